{#-
  Daily search funnel per platform x device x country x utm_source. Each event counts on its own
  day with the dimensions of the search it belongs to: searches on the search's day, clicks on the
  click's day, conversions (within the conversion window of their click) and their revenue on the
  conversion's day. Missing dimensions show as '(unknown)', a missing utm_source as '(none)'.

  Incremental: each run recomputes, in full, every day from the cutoff on, where the cutoff is the
  start of the latest day already in the table minus var('funnel_lookback_hours') (delete+insert by
  event_date). A late event up to that old is therefore counted by the next run. On top of that,
  the run also recomputes every older day that events staged in this same run touched (their
  searches, clicks or conversions, as the incremental intermediates recomputed them), so an
  incremental run gives the same table as a full refresh; only a day touched by a run that failed
  before reaching this model waits for the lookback or a --full-refresh.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail'
    )
}}

{%- set cutoff = none -%}
{%- if execute and is_incremental() -%}
    {%- set latest = run_query('select max(event_date) from ' ~ this).columns[0].values()[0] -%}
    {%- if latest is not none -%}
        {%- set latest_day = modules.datetime.datetime.strptime(latest | string, '%Y-%m-%d') -%}
        {%- set cutoff = (latest_day - modules.datetime.timedelta(hours=var('funnel_lookback_hours'))).strftime('%Y-%m-%d') -%}
    {%- endif -%}
{%- endif %}

{%- set touched_filter -%}
    {%- if cutoff is not none -%}
        (DATE_COL >= cast('{{ cutoff }}' as date) or DATE_COL in (select event_date from touched_days))
    {%- endif -%}
{%- endset %}

with
{%- if cutoff is not none %}
touched_days as (
    select event_date from {{ ref('int_user_journeys') }} where refreshed_at >= {{ run_stamp() }}
    union
    select c.event_date
    from {{ ref('stg_click_events') }} as c
    inner join {{ ref('int_user_journeys') }} as j on j.search_event_id = c.search_event_id
    where j.refreshed_at >= {{ run_stamp() }}
    union
    select event_date from {{ ref('stg_click_events') }} where loaded_at >= {{ run_stamp() }}
    union
    select event_date from {{ ref('int_conversions') }} where refreshed_at >= {{ run_stamp() }}
),
{%- endif %}

searches as (
    select
        event_date,
        platform,
        device_type,
        country,
        utm_source,
        count(*) as searches
    from {{ ref('int_user_journeys') }}
    {% if cutoff is not none %}where {{ touched_filter | replace('DATE_COL', 'event_date') }}{% endif %}
    group by 1, 2, 3, 4, 5
),

clicks as (
    select
        c.event_date,
        j.platform,
        j.device_type,
        j.country,
        j.utm_source,
        count(*) as clicks
    from {{ ref('stg_click_events') }} as c
    left join {{ ref('int_user_journeys') }} as j
        on j.search_event_id = c.search_event_id
    {% if cutoff is not none %}where {{ touched_filter | replace('DATE_COL', 'c.event_date') }}{% endif %}
    group by 1, 2, 3, 4, 5
),

conversions as (
    select
        event_date,
        platform,
        device_type,
        country,
        utm_source,
        count(*) as conversions,
        sum(booking_value) as revenue
    from {{ ref('int_conversions') }}
    where is_within_window
    {% if cutoff is not none %}and {{ touched_filter | replace('DATE_COL', 'event_date') }}{% endif %}
    group by 1, 2, 3, 4, 5
),

counts as (
    select event_date, platform, device_type, country, utm_source,
        searches, 0 as clicks, 0 as conversions, cast(0 as {{ money_type() }}) as revenue
    from searches
    union all
    select event_date, platform, device_type, country, utm_source,
        0, clicks, 0, cast(0 as {{ money_type() }})
    from clicks
    union all
    select event_date, platform, device_type, country, utm_source,
        0, 0, conversions, revenue
    from conversions
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
    {{ round_float('case when searches > 0 then 1.0 * conversions / searches end', 4) }} as conversion_rate
from funnel
