-- Every event more than var('session_timeout_minutes') after the previous event of its
-- (user_id, session_id) starts a session, and no session contains such a gap: the number of
-- sessions of a producer session is exactly 1 + its idle gaps. Recomputed from the staged events
-- for the producer sessions the latest run of int_search_sessions recomputed (all of them after a
-- full build; the touched ones after an incremental run, the others were checked when built).
{%- set group_key = "coalesce(user_id, '~anonymous') || '|' || coalesce(session_id, '~none')" %}
with checked as (
    select distinct {{ group_key }} as group_key
    from {{ ref('int_search_sessions') }}
    where refreshed_at = (select max(refreshed_at) from {{ ref('int_search_sessions') }})
),

activity as (
    select user_id, session_id, event_id, event_time from {{ ref('stg_search_events') }}
    union all
    select user_id, session_id, event_id, event_time from {{ ref('stg_click_events') }}
    union all
    select user_id, session_id, event_id, event_time from {{ ref('stg_conversion_events') }}
),

scoped as (
    select * from activity
    where {{ group_key }} in (select group_key from checked)
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
    from scoped
),

expected as (
    select user_id, session_id, 1 + sum(is_gap) as sessions
    from gaps
    group by user_id, session_id
),

actual as (
    select user_id, session_id, count(*) as sessions
    from {{ ref('int_search_sessions') }}
    where {{ group_key }} in (select group_key from checked)
    group by user_id, session_id
)

select e.user_id, e.session_id, e.sessions as expected_sessions, a.sessions as actual_sessions
from expected as e
full outer join actual as a
    on a.user_id is not distinct from e.user_id and a.session_id = e.session_id
where a.sessions is null or e.sessions is null or a.sessions <> e.sessions
