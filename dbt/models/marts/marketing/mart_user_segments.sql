-- One row per known user with the segment the spec defines, as of the latest event time:
--   power    3+ net conversions
--   regular  1-2 net conversions
--   engaged  no conversion and 3+ clicks
--   casual   no conversion, under 3 clicks, last seen within var('casual_recency_days') of as_of
--   dormant  the rest
-- Conversions here are all the user's bookings (inside or outside the journey window): a booking
-- made 25 hours after its click is still a booking of that user. Segments count NET bookings:
-- one the application database says is cancelled or refunded now does not count (dim_users
-- net_conversions; a booking not reported by the application yet counts).
-- Beside the segment, what the CRM expects (see the model's docs): engagement_score (searches +
-- 3 x clicks + 5 x bookings over the var('engagement_days') days up to as_of), primary_platform and
-- primary_country (the value of most of the user's searches; ties: alphabetically first).
with dim_users as (
    select * from {{ ref('dim_users') }}
),

int_as_of as (
    select * from {{ ref('int_as_of') }}
),

recent as (
    select e.user_id, e.weight
    from (
        select user_id, event_time, 1 as weight from {{ ref('stg_search_events') }}
        union all
        select user_id, event_time, 3 from {{ ref('stg_click_events') }}
        union all
        select user_id, event_time, 5 from {{ ref('stg_conversion_events') }}
    ) as e
    cross join int_as_of as a
    where e.user_id is not null
      and e.event_time > {{ dbt.dateadd('day', -1 * var('engagement_days'), 'a.as_of') }}
),

-- Keyed by the pseudonym, as dim_users is (macros/user_key.sql).
engagement as (
    select {{ user_key('user_id') }} as user_id, sum(weight) as engagement_score
    from recent
    group by user_id
),

searches as (
    select user_id, platform, country
    from {{ ref('stg_search_events') }}
    where user_id is not null
),

-- The value of most of the user's searches, ties to the alphabetically first (macros/most_frequent).
primary_platforms as (
    select {{ user_key('user_id') }} as user_id, platform as primary_platform
    from ({{ most_frequent('searches', 'user_id', 'platform') }}) as top_platform
),

primary_countries as (
    select {{ user_key('user_id') }} as user_id, country as primary_country
    from ({{ most_frequent('searches', 'user_id', 'country') }}) as top_country
)

select
    u.user_id,
    case
        when u.net_conversions >= 3 then 'power'
        when u.net_conversions >= 1 then 'regular'
        when u.total_clicks >= 3 then 'engaged'
        when u.last_seen_at >= {{ dbt.dateadd('day', -1 * var('casual_recency_days'), 'a.as_of') }} then 'casual'
        else 'dormant'
    end as segment,
    u.total_searches,
    u.total_clicks,
    u.total_conversions,
    cast(u.lifetime_value as {{ money_type() }}) as lifetime_value,
    cast(u.net_lifetime_value as {{ money_type() }}) as net_lifetime_value,
    u.first_seen_at,
    u.last_seen_at,
    a.as_of,
    cast(coalesce(g.engagement_score, 0) as bigint) as engagement_score,
    p.primary_platform,
    c.primary_country
from dim_users as u
cross join int_as_of as a
left join engagement as g on g.user_id = u.user_id
left join primary_platforms as p on p.user_id = u.user_id
left join primary_countries as c on c.user_id = u.user_id
