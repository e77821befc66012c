-- A user with 3+ conversions is power, 1-2 regular, 0 with 3+ clicks engaged, 0 with fewer clicks
-- casual when seen within var('casual_recency_days') of as_of, else dormant. Recomputed from
-- int_conversions and int_search_sessions, not from the mart's own counts. Conversions are net:
-- a booking whose current status in the application database is cancelled or refunded is left out.
with conversions as (
    select c.user_id, count(*) as conversions
    from {{ ref('int_conversions') }} as c
    left join {{ ref('int_booking_status_history') }} as b
        on b.booking_id = c.conversion_id and b.dbt_valid_to is null
    where c.user_id is not null and coalesce(b.status, 'confirmed') = 'confirmed'
    group by c.user_id
),

activity as (
    select user_id, sum(clicks) as clicks, max(session_ended_at) as last_seen_at
    from {{ ref('int_search_sessions') }}
    where user_id is not null
    group by user_id
),

expected as (
    select
        {{ user_key('a.user_id') }} as user_id,  -- the mart's key is the pseudonym
        case
            when coalesce(c.conversions, 0) >= 3 then 'power'
            when coalesce(c.conversions, 0) >= 1 then 'regular'
            when a.clicks >= 3 then 'engaged'
            when a.last_seen_at >= {{ dbt.dateadd('day', -1 * var('casual_recency_days'), 'o.as_of') }} then 'casual'
            else 'dormant'
        end as segment
    from activity as a
    cross join {{ ref('int_as_of') }} as o
    left join conversions as c on c.user_id = a.user_id
)

select e.user_id, e.segment as expected_segment, m.segment as actual_segment
from expected as e
full outer join {{ ref('mart_user_segments') }} as m on m.user_id = e.user_id
where m.segment is null or e.segment is null or m.segment <> e.segment
