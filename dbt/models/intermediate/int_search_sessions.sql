-- Sessions: the events (search, click, conversion) of one (user_id, session_id) pair, split where
-- the gap between two consecutive events exceeds var('session_timeout_minutes'). The producer's
-- session_id is kept as the outer boundary (two devices of one user are two sessions); anonymous
-- events (user_id NULL) form their own sessions. session_key is the session_id for the first part
-- and session_id#n for the n-th part after a split.
--
-- Incremental (delete+insert by session_group_key): a run recomputes, from all their events, only
-- the producer sessions (user_id, session_id) that got an event staged since the model's last run,
-- and replaces every part of them (a late event can merge two parts or split one).
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='session_group_key',
        on_schema_change='fail'
    )
}}

with stg_searches as (
    select * from {{ ref('stg_search_events') }}
),

stg_clicks as (
    select * from {{ ref('stg_click_events') }}
),

stg_conversions as (
    select * from {{ ref('stg_conversion_events') }}
),

all_activity as (
    select event_id, 'search' as event_type, user_id, session_id, event_time, destination, loaded_at
    from stg_searches
    union all
    select event_id, 'click', user_id, session_id, event_time, cast(null as {{ dbt.type_string() }}), loaded_at
    from stg_clicks
    union all
    select event_id, 'conversion', user_id, session_id, event_time, cast(null as {{ dbt.type_string() }}), loaded_at
    from stg_conversions
),
{%- if is_incremental() %}

-- the producer sessions that got an event staged since this model's last run
touched_sessions as (
    select distinct {{ session_group_key() }} as session_group
    from all_activity
    where loaded_at > {{ watermark() }}
),
{%- endif %}

activity as (
    select a.event_id, a.event_type, a.user_id, a.session_id, a.event_time, a.destination
    from all_activity as a
    {%- if is_incremental() %}
    where {{ session_group_key('a.') }} in (select session_group from touched_sessions)
    {%- endif %}
),

gaps as (
    select
        *,
        lag(event_time) over (
            partition by user_id, session_id order by event_time, event_id
        ) as previous_event_time
    from activity
),

flagged as (
    select
        *,
        case
            when previous_event_time is null then 1
            when event_time > {{ dbt.dateadd('minute', var('session_timeout_minutes'), 'previous_event_time') }} then 1
            else 0
        end as starts_session
    from gaps
),

numbered as (
    select
        *,
        sum(starts_session) over (
            partition by user_id, session_id
            order by event_time, event_id
            rows between unbounded preceding and current row
        ) as session_index
    from flagged
),

last_search as (
    select
        user_id,
        session_id,
        session_index,
        destination,
        row_number() over (
            partition by user_id, session_id, session_index
            order by event_time desc, event_id desc
        ) as recency
    from numbered
    where event_type = 'search' and destination is not null
),

sessions as (
    select
        user_id,
        session_id,
        session_index,
        min(event_time) as session_started_at,
        max(event_time) as session_ended_at,
        count(*) as events,
        sum(case when event_type = 'search' then 1 else 0 end) as searches,
        sum(case when event_type = 'click' then 1 else 0 end) as clicks,
        sum(case when event_type = 'conversion' then 1 else 0 end) as conversions
    from numbered
    group by user_id, session_id, session_index
)

select
    {{ dbt.hash("coalesce(s.user_id, '~anonymous') || '|' || s.session_id || '|' || cast(s.session_index as " ~ dbt.type_string() ~ ")") }} as session_sk,
    {{ dbt.hash(session_group_key('s.')) }} as session_group_key,
    case
        when s.session_index = 1 then s.session_id
        else s.session_id || '#' || cast(s.session_index as {{ dbt.type_string() }})
    end as session_key,
    s.session_id,
    cast(s.session_index as bigint) as session_index,
    s.user_id,
    s.session_started_at,
    s.session_ended_at,
    {{ seconds_between('s.session_started_at', 's.session_ended_at') }} as duration_seconds,
    cast(s.events as bigint) as events,
    cast(s.searches as bigint) as searches,
    cast(s.clicks as bigint) as clicks,
    cast(s.conversions as bigint) as conversions,
    l.destination as last_searched_destination,
    {{ run_stamp() }} as refreshed_at
from sessions as s
left join last_search as l
    on l.user_id is not distinct from s.user_id
    and l.session_id = s.session_id
    and l.session_index = s.session_index
    and l.recency = 1
