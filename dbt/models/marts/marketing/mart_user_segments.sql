-- One row per known user with the segment the spec defines, as of the latest event time:
--   power    3+ conversions
--   regular  1-2 conversions
--   engaged  no conversion and 3+ clicks
--   casual   no conversion, under 3 clicks, last seen within var('casual_recency_days') of as_of
--   dormant  the rest
-- Conversions here are all the user's bookings (inside or outside the journey window): a booking
-- made 25 hours after its click is still a booking of that user.
with dim_users as (
    select * from {{ ref('dim_users') }}
),

int_as_of as (
    select * from {{ ref('int_as_of') }}
)

select
    u.user_id,
    case
        when u.total_conversions >= 3 then 'power'
        when u.total_conversions >= 1 then 'regular'
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
    a.as_of
from dim_users as u
cross join int_as_of as a
