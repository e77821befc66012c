-- The segment distribution over time, from the SCD2 snapshot: at each build that recorded the
-- snapshot (its as-of time), how many users were in each segment. A view over the snapshot, like
-- mart_segment_transitions.
{{ config(materialized='view', meta={'after_publication': true}) }}

with versions as (
    select * from {{ ref('user_segments_snapshot') }}
),

recorded as (
    select distinct dbt_updated_at as as_of from versions
)

select
    r.as_of,
    cast(r.as_of as date) as as_of_date,
    v.segment,
    count(*) as users
from recorded as r
inner join versions as v
    on v.dbt_valid_from <= r.as_of
    and (v.dbt_valid_to is null or v.dbt_valid_to > r.as_of)
group by r.as_of, v.segment
