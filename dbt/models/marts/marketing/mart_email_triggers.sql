-- Abandoned-search emails: one row per known user's session that had searches, had no conversion by
-- that user from the session's start until var('conversion_window_hours') after its end, and ended
-- between var('trigger_min_hours') and var('trigger_max_hours') before the as-of time.
-- trigger_id = md5(user key | session_key | 'abandoned_search'): the same session always gives the
-- same id, so the insert-only email queue never gets a second email for it. The user key is the
-- pseudonym (macros/user_key.sql), so the id cannot be confirmed from a trigger id either.
with int_search_sessions as (
    select * from {{ ref('int_search_sessions') }}
),

int_as_of as (
    select * from {{ ref('int_as_of') }}
),

int_conversions as (
    select * from {{ ref('int_conversions') }}
)

select
    {{ dbt.hash(user_key('s.user_id') ~ " || '|' || s.session_key || '|abandoned_search'") }} as trigger_id,
    {{ user_key('s.user_id') }} as user_id,
    s.session_key as session_id,
    'abandoned_search' as trigger_type,
    s.last_searched_destination as destination,
    s.searches as searches_in_session,
    s.session_started_at,
    s.session_ended_at,
    a.as_of
from int_search_sessions as s
cross join int_as_of as a
where s.user_id is not null
    and s.searches > 0
    and s.session_ended_at <= {{ dbt.dateadd('hour', -1 * var('trigger_min_hours'), 'a.as_of') }}
    and s.session_ended_at >= {{ dbt.dateadd('hour', -1 * var('trigger_max_hours'), 'a.as_of') }}
    and not exists (
        select 1
        from int_conversions as c
        where c.user_id = s.user_id
            and c.converted_at >= s.session_started_at
            and c.converted_at <= {{ dbt.dateadd('hour', var('conversion_window_hours'), 's.session_ended_at') }}
    )
