-- For every day the last (incremental or full) run recomputed, the funnel counts each deduplicated
-- event exactly once: searches, clicks, journey conversions and revenue per day equal a count
-- straight from staging. Late events within the lookback and duplicated raw events are covered.
{%- set lookback_days = (var('funnel_lookback_hours') / 24) | round(0, 'ceil') | int %}
with recent as (
    select {{ dbt.dateadd('day', -1 * lookback_days, 'max(event_date)') }} as since
    from {{ ref('fct_search_funnel') }}
),

expected as (
    select event_date, count(*) as searches, 0 as clicks, 0 as conversions, 0 as revenue
    from {{ ref('stg_search_events') }}
    group by event_date
    union all
    select event_date, 0, count(*), 0, 0
    from {{ ref('stg_click_events') }}
    group by event_date
    union all
    select event_date, 0, 0, count(*), sum(booking_value)
    from {{ ref('int_conversions') }}
    where is_within_window
    group by event_date
),

expected_daily as (
    select event_date, sum(searches) as searches, sum(clicks) as clicks,
        sum(conversions) as conversions, sum(revenue) as revenue
    from expected
    group by event_date
),

actual_daily as (
    select event_date, sum(searches) as searches, sum(clicks) as clicks,
        sum(conversions) as conversions, sum(revenue) as revenue
    from {{ ref('fct_search_funnel') }}
    group by event_date
)

select e.event_date, e.searches, a.searches as funnel_searches, e.clicks, a.clicks as funnel_clicks,
    e.conversions, a.conversions as funnel_conversions, e.revenue, a.revenue as funnel_revenue
from expected_daily as e
cross join recent as r
left join actual_daily as a on a.event_date = e.event_date
where e.event_date >= r.since
    and (a.event_date is null
        or a.searches <> e.searches
        or a.clicks <> e.clicks
        or a.conversions <> e.conversions
        or a.revenue <> e.revenue)
