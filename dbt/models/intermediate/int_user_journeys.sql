-- One row per search: the journey search -> click -> conversion it started. Clicks are the clicks on
-- its results; conversions and revenue only those within var('conversion_window_hours') of their click.
--
-- Incremental (delete+insert by search_event_id): a run recomputes the searches staged since the
-- model's last run, those with a click staged since, and those whose conversions int_conversions
-- recomputed since (a late click or conversion changes its search's journey).
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='search_event_id',
        on_schema_change='fail'
    )
}}

with stg_searches as (
    select * from {{ ref('stg_search_events') }}
),

stg_clicks as (
    select * from {{ ref('stg_click_events') }}
),

conversions as (
    select * from {{ ref('int_conversions') }}
),
{%- if is_incremental() %}

touched as (
    select event_id as search_event_id
    from stg_searches
    where loaded_at > {{ watermark() }}
    union
    select search_event_id
    from stg_clicks
    where loaded_at > {{ watermark() }} and search_event_id is not null
    union
    select search_event_id
    from conversions
    where refreshed_at > {{ watermark() }} and search_event_id is not null
),
{%- endif %}

searches as (
    select * from stg_searches
    {%- if is_incremental() %}
    where event_id in (select search_event_id from touched)
    {%- endif %}
),

clicks_per_search as (
    select
        search_event_id,
        count(*) as clicks,
        min(event_time) as first_clicked_at
    from stg_clicks
    where search_event_id is not null
    {%- if is_incremental() %}
        and search_event_id in (select search_event_id from touched)
    {%- endif %}
    group by search_event_id
),

conversions_per_search as (
    select
        search_event_id,
        count(*) as conversions,
        sum(booking_value) as revenue,
        min(converted_at) as first_converted_at
    from conversions
    where is_within_window and search_event_id is not null
    {%- if is_incremental() %}
        and search_event_id in (select search_event_id from touched)
    {%- endif %}
    group by search_event_id
)

select
    s.event_id as search_event_id,
    s.user_id,
    s.session_id,
    s.event_time as searched_at,
    s.event_date,
    s.destination,
    s.platform,
    s.device_type,
    s.country,
    s.utm_source,
    s.utm_campaign,
    coalesce(c.clicks, 0) as clicks,
    c.first_clicked_at,
    coalesce(v.conversions, 0) as conversions,
    cast(coalesce(v.revenue, 0) as {{ money_type() }}) as revenue,
    v.first_converted_at,
    case
        when v.conversions > 0 then 'converted'
        when c.clicks > 0 then 'clicked'
        else 'searched'
    end as journey_stage,
    {{ run_stamp() }} as refreshed_at
from searches as s
left join clicks_per_search as c on c.search_event_id = s.event_id
left join conversions_per_search as v on v.search_event_id = s.event_id
