-- Abandoned-search triggers: one per session, only known users' sessions with searches, ended
-- 1 to 72 hours before as_of, and no booking by the user from the session's start to the end of
-- the conversion window after it.
select min(t.trigger_id) as trigger_id, 'two triggers for one session' as problem
from {{ ref('mart_email_triggers') }} as t
group by t.user_id, t.session_id
having count(*) > 1

union all

select t.trigger_id, 'outside the 1-72 hour window or no searches'
from {{ ref('mart_email_triggers') }} as t
where t.searches_in_session < 1
    or t.session_ended_at > {{ dbt.dateadd('hour', -1 * var('trigger_min_hours'), 't.as_of') }}
    or t.session_ended_at < {{ dbt.dateadd('hour', -1 * var('trigger_max_hours'), 't.as_of') }}

union all

select t.trigger_id, 'the user booked within the window'
from {{ ref('mart_email_triggers') }} as t
inner join (
    select {{ user_key('user_id') }} as user_key, event_time  -- the mart's key is the pseudonym
    from {{ ref('stg_conversion_events') }}
    where user_id is not null
) as c
    on c.user_key = t.user_id
    and c.event_time >= t.session_started_at
    and c.event_time <= {{ dbt.dateadd('hour', var('conversion_window_hours'), 't.session_ended_at') }}
