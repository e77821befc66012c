-- Conversions and revenue per utm_source x utm_campaign, first-touch and last-touch. Only journey
-- conversions (within the window of their click) count, so each model's totals equal the funnel's.
-- The touches and their rules (the searches of the same person up to the conversion; first =
-- earliest, last = latest, ties broken by event id) live in int_conversion_touches, shared with
-- mart_campaign_performance; this mart counts them over all days.
with touches as (
    select * from {{ ref('int_conversion_touches') }}
),

credited as (
    select
        first_utm_source as utm_source,
        first_utm_campaign as utm_campaign,
        1 as first_touch_conversions,
        booking_value as first_touch_revenue,
        0 as last_touch_conversions,
        cast(0 as {{ money_type() }}) as last_touch_revenue
    from touches
    union all
    select
        last_utm_source,
        last_utm_campaign,
        0,
        cast(0 as {{ money_type() }}),
        1,
        booking_value
    from touches
)

select
    utm_source || ' / ' || utm_campaign as campaign_key,
    utm_source,
    utm_campaign,
    cast(sum(first_touch_conversions) as bigint) as first_touch_conversions,
    cast(sum(first_touch_revenue) as {{ money_type() }}) as first_touch_revenue,
    cast(sum(last_touch_conversions) as bigint) as last_touch_conversions,
    cast(sum(last_touch_revenue) as {{ money_type() }}) as last_touch_revenue
from credited
group by utm_source, utm_campaign
