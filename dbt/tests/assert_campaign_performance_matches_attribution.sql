-- Summed over all days, the daily campaign performance credits the same conversions and revenue to
-- each campaign as mart_campaign_attribution (both apply the same first/last-touch rules).
with daily as (
    select
        campaign_key,
        sum(first_touch_conversions) as first_touch_conversions,
        sum(first_touch_revenue) as first_touch_revenue,
        sum(last_touch_conversions) as last_touch_conversions,
        sum(last_touch_revenue) as last_touch_revenue
    from {{ ref('mart_campaign_performance') }}
    group by campaign_key
    having sum(first_touch_conversions) + sum(last_touch_conversions) > 0
),

totals as (
    select * from {{ ref('mart_campaign_attribution') }}
)

select coalesce(d.campaign_key, t.campaign_key) as campaign_key
from daily as d
full outer join totals as t on t.campaign_key = d.campaign_key
where d.campaign_key is null
    or t.campaign_key is null
    or d.first_touch_conversions <> t.first_touch_conversions
    or d.first_touch_revenue <> t.first_touch_revenue
    or d.last_touch_conversions <> t.last_touch_conversions
    or d.last_touch_revenue <> t.last_touch_revenue
