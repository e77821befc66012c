{#-
  Daily search funnel per platform x device x country x utm_source. Each event counts on its own
  day with the dimensions of the search it belongs to: searches on the search's day, clicks on the
  click's day, conversions (within the conversion window of their click) and their revenue on the
  conversion's day. Missing dimensions show as '(unknown)', a missing utm_source as '(none)'.

  Incremental (delete+insert by event_date). A candidate starts as a copy of the published funnel
  (searchflow/transform/candidate.py), so each build continues from the served version. A run
  recomputes in full every day from funnel_recompute_from() on (the latest day already in the table
  minus var('funnel_lookback_hours')), so a late event up to that old is counted, and every older
  day that upstream rows recomputed since this table's last build touched (their searches, clicks
  or conversions). An incremental build therefore gives the same table as a full refresh.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail'
    )
}}

with journeys as (
    select * from {{ ref('int_user_journeys') }}
),

clicks as (
    select * from {{ ref('stg_click_events') }}
),

conversions as (
    select * from {{ ref('int_conversions') }}
),
{%- if is_incremental() %}

recompute_window as (
    {{ funnel_recompute_from() }}
),

-- days whose searches, clicks or conversions changed since this table's last build
touched_days as (
    select event_date from journeys where refreshed_at > {{ watermark() }}
    union
    select c.event_date
    from clicks as c
    inner join journeys as j on j.search_event_id = c.search_event_id
    where j.refreshed_at > {{ watermark() }}
    union
    select event_date from clicks where loaded_at > {{ watermark() }}
    union
    select event_date from conversions where refreshed_at > {{ watermark() }}
),
{%- endif %}

searches_per_day as (
    select
        event_date,
        platform,
        device_type,
        country,
        utm_source,
        count(*) as searches
    from journeys
    {%- if is_incremental() %}
    where event_date >= (select recompute_from from recompute_window)
        or event_date in (select event_date from touched_days)
    {%- endif %}
    group by 1, 2, 3, 4, 5
),

clicks_per_day as (
    select
        c.event_date,
        j.platform,
        j.device_type,
        j.country,
        j.utm_source,
        count(*) as clicks
    from clicks as c
    left join journeys as j
        on j.search_event_id = c.search_event_id
    {%- if is_incremental() %}
    where c.event_date >= (select recompute_from from recompute_window)
        or c.event_date in (select event_date from touched_days)
    {%- endif %}
    group by 1, 2, 3, 4, 5
),

conversions_per_day as (
    select
        event_date,
        platform,
        device_type,
        country,
        utm_source,
        count(*) as conversions,
        sum(booking_value) as revenue
    from conversions
    where is_within_window
    {%- if is_incremental() %}
        and (
            event_date >= (select recompute_from from recompute_window)
            or event_date in (select event_date from touched_days)
        )
    {%- endif %}
    group by 1, 2, 3, 4, 5
),

counts as (
    select event_date, platform, device_type, country, utm_source,
        searches, 0 as clicks, 0 as conversions, cast(0 as {{ money_type() }}) as revenue
    from searches_per_day
    union all
    select event_date, platform, device_type, country, utm_source,
        0, clicks, 0, cast(0 as {{ money_type() }})
    from clicks_per_day
    union all
    select event_date, platform, device_type, country, utm_source,
        0, 0, conversions, revenue
    from conversions_per_day
),

funnel as (
    select
        event_date,
        coalesce(platform, '(unknown)') as platform,
        coalesce(device_type, '(unknown)') as device_type,
        coalesce(country, '(unknown)') as country,
        coalesce(utm_source, '(none)') as utm_source,
        sum(searches) as searches,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(revenue) as revenue
    from counts
    group by 1, 2, 3, 4, 5
)

select
    cast(event_date as date) as event_date,
    platform,
    device_type,
    country,
    utm_source,
    cast(searches as bigint) as searches,
    cast(clicks as bigint) as clicks,
    cast(conversions as bigint) as conversions,
    cast(revenue as {{ money_type() }}) as revenue,
    {{ round_float('case when searches > 0 then 1.0 * clicks / searches end', 4) }} as click_through_rate,
    {{ round_float('case when searches > 0 then 1.0 * conversions / searches end', 4) }} as conversion_rate,
    {{ run_stamp() }} as refreshed_at
from funnel
