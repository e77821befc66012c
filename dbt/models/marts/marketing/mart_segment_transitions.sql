-- Who moved from which segment to which, and when: one row per version of a user's segment in the
-- SCD2 snapshot, with the segment it replaced ('(new)' for a user's first version). A view, so it
-- always reflects the snapshot as it is now. Built after publication, with the snapshot, straight
-- into the published schema (meta after_publication, see generate_schema_name).
{{ config(materialized='view', meta={'after_publication': true}) }}

with versions as (
    select * from {{ ref('user_segments_snapshot') }}
),

ordered as (
    select
        user_id,
        segment,
        dbt_valid_from,
        lag(segment) over (partition by user_id order by dbt_valid_from) as previous_segment
    from versions
)

select
    user_id,
    coalesce(previous_segment, '(new)') as from_segment,
    segment as to_segment,
    dbt_valid_from as transitioned_at,
    cast(dbt_valid_from as date) as transition_date
from ordered
