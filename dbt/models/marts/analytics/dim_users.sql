-- One row per known user (anonymous events are left out): when they were first and last seen,
-- their first-touch context and lifetime totals. Totals count every event of the user; conversions
-- and lifetime value count every booking, journey_conversions only those within the window.
-- lifetime_value is gross (every booking's value); net_lifetime_value counts only bookings whose
-- status in the application database is confirmed now (cancelled and refunded ones left out; a
-- booking the application has not reported yet counts as confirmed).
with int_search_sessions as (
    select * from {{ ref('int_search_sessions') }}
),

int_conversions as (
    select * from {{ ref('int_conversions') }}
),

int_user_journeys as (
    select * from {{ ref('int_user_journeys') }}
),

sessions as (
    select
        user_id,
        min(session_started_at) as first_seen_at,
        max(session_ended_at) as last_seen_at,
        count(*) as total_sessions,
        sum(searches) as total_searches,
        sum(clicks) as total_clicks,
        sum(conversions) as total_conversions
    from int_search_sessions
    where user_id is not null
    group by user_id
),

-- The booking's status now, from the application database (absent: no app record yet, confirmed).
booking_status as (
    select booking_id, status
    from {{ ref('int_booking_status_history') }}
    where dbt_valid_to is null
),

bookings as (
    select
        c.user_id,
        sum(c.booking_value) as lifetime_value,
        sum(case when coalesce(b.status, 'confirmed') = 'confirmed' then c.booking_value else 0 end)
            as net_lifetime_value,
        sum(case when coalesce(b.status, 'confirmed') = 'confirmed' then 1 else 0 end)
            as net_conversions,
        sum(case when c.is_within_window then 1 else 0 end) as journey_conversions
    from int_conversions as c
    left join booking_status as b on b.booking_id = c.conversion_id
    where c.user_id is not null
    group by c.user_id
),

searches as (
    select
        user_id,
        platform,
        device_type,
        country,
        utm_source,
        utm_campaign,
        row_number() over (partition by user_id order by searched_at, search_event_id) as search_number
    from int_user_journeys
    where user_id is not null
),

destinations as (
    select user_id, count(distinct destination) as distinct_destinations
    from int_user_journeys
    where user_id is not null and destination is not null
    group by user_id
)

select
    {{ user_key('s.user_id') }} as user_id,
    s.first_seen_at,
    s.last_seen_at,
    f.platform as first_platform,
    f.device_type as first_device_type,
    f.country as first_country,
    coalesce(f.utm_source, '(none)') as first_utm_source,
    coalesce(f.utm_campaign, '(none)') as first_utm_campaign,
    cast(s.total_sessions as bigint) as total_sessions,
    cast(s.total_searches as bigint) as total_searches,
    cast(s.total_clicks as bigint) as total_clicks,
    cast(s.total_conversions as bigint) as total_conversions,
    cast(coalesce(b.journey_conversions, 0) as bigint) as journey_conversions,
    cast(coalesce(b.lifetime_value, 0) as {{ money_type() }}) as lifetime_value,
    cast(coalesce(b.net_lifetime_value, 0) as {{ money_type() }}) as net_lifetime_value,
    cast(coalesce(b.net_conversions, 0) as bigint) as net_conversions,
    cast(coalesce(d.distinct_destinations, 0) as bigint) as distinct_destinations
from sessions as s
left join searches as f on f.user_id = s.user_id and f.search_number = 1
left join bookings as b on b.user_id = s.user_id
left join destinations as d on d.user_id = s.user_id
