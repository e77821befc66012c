-- Daily spend per paid campaign, as the ad platform would bill it: the campaign's daily fee on every
-- day the events cover, plus its price per click times the clicks on searches it brought that day.
-- Untagged and direct traffic is free, so it has no rows here.
with costs as (
    select * from {{ ref('stg_campaign_costs') }}
),

journeys as (
    select * from {{ ref('int_user_journeys') }}
),

days as (
    select distinct event_date from journeys
),

paid_clicks as (
    select
        event_date,
        utm_source,
        utm_campaign,
        sum(clicks) as clicks
    from journeys
    where utm_source is not null and utm_campaign is not null
    group by event_date, utm_source, utm_campaign
)

select
    d.event_date,
    c.campaign_key,
    c.utm_source,
    c.utm_campaign,
    cast(coalesce(p.clicks, 0) as bigint) as paid_clicks,
    cast(c.daily_fee + c.cost_per_click * coalesce(p.clicks, 0) as {{ money_type() }}) as spend
from days as d
cross join costs as c
left join paid_clicks as p
    on p.event_date = d.event_date
    and p.utm_source = c.utm_source
    and p.utm_campaign = c.utm_campaign
