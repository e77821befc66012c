-- Every event more than var('session_timeout_minutes') after the previous event of its
-- (user_id, session_id) starts a session, and no session contains such a gap: the number of
-- sessions of a producer session is exactly 1 + its idle gaps.
with activity as (
    select user_id, session_id, event_id, event_time from {{ ref('stg_search_events') }}
    union all
    select user_id, session_id, event_id, event_time from {{ ref('stg_click_events') }}
    union all
    select user_id, session_id, event_id, event_time from {{ ref('stg_conversion_events') }}
),

gaps as (
    select
        user_id,
        session_id,
        case
            when event_time > {{ dbt.dateadd('minute', var('session_timeout_minutes'),
                'lag(event_time) over (partition by user_id, session_id order by event_time, event_id)') }}
            then 1 else 0
        end as is_gap
    from activity
),

expected as (
    select user_id, session_id, 1 + sum(is_gap) as sessions
    from gaps
    group by user_id, session_id
),

actual as (
    select user_id, session_id, count(*) as sessions
    from {{ ref('int_search_sessions') }}
    group by user_id, session_id
)

select e.user_id, e.session_id, e.sessions as expected_sessions, a.sessions as actual_sessions
from expected as e
left join actual as a
    on a.user_id is not distinct from e.user_id and a.session_id = e.session_id
where a.sessions is null or a.sessions <> e.sessions
