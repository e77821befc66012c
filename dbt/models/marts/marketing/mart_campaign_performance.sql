-- Per day and campaign (utm_source x utm_campaign): spend, and conversions and revenue credited by
-- first touch and by last touch (journey conversions, counted on the booking's day). Summed over
-- any range, the conversion and revenue columns equal mart_campaign_attribution's over the same
-- bookings; ROAS is revenue / spend and cost per booking spend / conversions over that range, on
-- paid campaigns (is_paid: listed in the price list, seed campaign_costs).
with touches as (
    select * from {{ ref('int_conversion_touches') }}
),

spend as (
    select * from {{ ref('int_campaign_spend') }}
),

costs as (
    select * from {{ ref('stg_campaign_costs') }}
),

first_touch as (
    select
        event_date,
        first_utm_source as utm_source,
        first_utm_campaign as utm_campaign,
        count(*) as conversions,
        sum(booking_value) as revenue
    from touches
    group by 1, 2, 3
),

last_touch as (
    select
        event_date,
        last_utm_source as utm_source,
        last_utm_campaign as utm_campaign,
        count(*) as conversions,
        sum(booking_value) as revenue
    from touches
    group by 1, 2, 3
),

campaign_days as (
    select event_date, utm_source, utm_campaign from first_touch
    union
    select event_date, utm_source, utm_campaign from last_touch
    union
    select event_date, utm_source, utm_campaign from spend
)

select
    d.event_date,
    d.utm_source || ' / ' || d.utm_campaign as campaign_key,
    d.utm_source,
    d.utm_campaign,
    c.campaign_key is not null as is_paid,
    cast(coalesce(s.paid_clicks, 0) as bigint) as paid_clicks,
    cast(coalesce(s.spend, 0) as {{ money_type() }}) as spend,
    cast(coalesce(f.conversions, 0) as bigint) as first_touch_conversions,
    cast(coalesce(f.revenue, 0) as {{ money_type() }}) as first_touch_revenue,
    cast(coalesce(l.conversions, 0) as bigint) as last_touch_conversions,
    cast(coalesce(l.revenue, 0) as {{ money_type() }}) as last_touch_revenue
from campaign_days as d
left join costs as c on c.utm_source = d.utm_source and c.utm_campaign = d.utm_campaign
left join spend as s
    on s.event_date = d.event_date and s.utm_source = d.utm_source and s.utm_campaign = d.utm_campaign
left join first_touch as f
    on f.event_date = d.event_date and f.utm_source = d.utm_source and f.utm_campaign = d.utm_campaign
left join last_touch as l
    on l.event_date = d.event_date and l.utm_source = d.utm_source and l.utm_campaign = d.utm_campaign
