-- Conversions and revenue per utm_source x utm_campaign, first-touch and last-touch. Only journey
-- conversions (within the window of their click) count, so each model's totals equal the funnel's.
-- A conversion's touches are the searches of the same person up to the conversion time: the known
-- user of its originating search, or for anonymous journeys that search's session.
-- First touch = the earliest of them, last touch = the latest (ties broken by event id).
with int_conversions as (
    select * from {{ ref('int_conversions') }}
),

int_user_journeys as (
    select * from {{ ref('int_user_journeys') }}
),

conversions as (
    select
        conversion_id,
        search_event_id,
        converted_at,
        booking_value,
        coalesce(search_user_id, '~session:' || search_session_id) as person_key
    from int_conversions
    where is_within_window and search_event_id is not null
),

searches as (
    select
        coalesce(user_id, '~session:' || session_id) as person_key,
        search_event_id,
        searched_at,
        coalesce(utm_source, '(none)') as utm_source,
        coalesce(utm_campaign, '(none)') as utm_campaign
    from int_user_journeys
),

-- Every search of the person that counts as a touch of the conversion.
touch_candidates as (
    select c.conversion_id, s.search_event_id, s.searched_at
    from conversions as c
    inner join searches as s
        on s.person_key = c.person_key
        and (s.searched_at <= c.converted_at or s.search_event_id = c.search_event_id)
),

-- First and last touch by aggregation rather than row_number() over each conversion's touches:
-- same ties (earliest then smallest id; latest then largest id), hash aggregates instead of a
-- sort per partition.
bounds as (
    select conversion_id, min(searched_at) as first_at, max(searched_at) as last_at
    from touch_candidates
    group by conversion_id
),

picked as (
    select
        t.conversion_id,
        min(case when t.searched_at = b.first_at then t.search_event_id end) as first_search_id,
        max(case when t.searched_at = b.last_at then t.search_event_id end) as last_search_id
    from touch_candidates as t
    inner join bounds as b on b.conversion_id = t.conversion_id
    group by t.conversion_id
),

touches as (
    select c.booking_value, f.utm_source, f.utm_campaign, 1 as first_rank, 0 as last_rank
    from picked as p
    inner join conversions as c on c.conversion_id = p.conversion_id
    inner join searches as f on f.search_event_id = p.first_search_id
    union all
    select c.booking_value, l.utm_source, l.utm_campaign, 0, 1
    from picked as p
    inner join conversions as c on c.conversion_id = p.conversion_id
    inner join searches as l on l.search_event_id = p.last_search_id
),

credited as (
    select utm_source, utm_campaign,
        1 as first_touch_conversions, booking_value as first_touch_revenue,
        0 as last_touch_conversions, cast(0 as {{ money_type() }}) as last_touch_revenue
    from touches where first_rank = 1
    union all
    select utm_source, utm_campaign, 0, cast(0 as {{ money_type() }}), 1, booking_value
    from touches where last_rank = 1
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
