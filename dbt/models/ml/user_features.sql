{#-
  Per-user features for a model-training team, with the label it would learn.
  The cutoff is as_of minus var('ml_label_days') (14): every feature uses only events up to the
  cutoff, and the label `converts_next_period` is 1 when the user made a booking after the cutoff
  and up to as_of. One row per known user seen by the cutoff (users who appeared later have no
  history to learn from). Rebuilding on unchanged raw data gives the same rows.
-#}
with int_as_of as (
    select * from {{ ref('int_as_of') }}
),

int_search_sessions as (
    select * from {{ ref('int_search_sessions') }}
),

int_conversions as (
    select * from {{ ref('int_conversions') }}
),

int_user_journeys as (
    select * from {{ ref('int_user_journeys') }}
),

bounds as (
    select
        as_of,
        {{ dbt.dateadd('day', -1 * var('ml_label_days'), 'as_of') }} as feature_cutoff
    from int_as_of
),

sessions as (
    select
        s.user_id,
        min(s.session_started_at) as first_seen_at,
        max(s.session_ended_at) as last_seen_at,
        count(*) as sessions,
        sum(s.searches) as searches,
        sum(s.clicks) as clicks,
        sum(s.conversions) as conversions,
        avg(s.duration_seconds) as avg_session_seconds,
        sum(case when s.session_started_at > {{ dbt.dateadd('day', -7, 'b.feature_cutoff') }} then s.searches else 0 end) as searches_last_7d
    from int_search_sessions as s
    cross join bounds as b
    where s.user_id is not null and s.session_started_at <= b.feature_cutoff
    group by s.user_id
),

bookings as (
    select
        c.user_id,
        sum(case when c.converted_at <= b.feature_cutoff then c.booking_value else 0 end) as revenue,
        max(case when c.converted_at > b.feature_cutoff and c.converted_at <= b.as_of then 1 else 0 end) as converts_next_period
    from int_conversions as c
    cross join bounds as b
    where c.user_id is not null
    group by c.user_id
),

destinations as (
    select j.user_id, count(distinct j.destination) as distinct_destinations
    from int_user_journeys as j
    cross join bounds as b
    where j.user_id is not null and j.destination is not null and j.searched_at <= b.feature_cutoff
    group by j.user_id
)

select
    {{ user_key('s.user_id') }} as user_id,
    b.feature_cutoff,
    cast(s.sessions as bigint) as sessions,
    cast(s.searches as bigint) as searches,
    cast(s.clicks as bigint) as clicks,
    cast(s.conversions as bigint) as conversions,
    cast(coalesce(k.revenue, 0) as {{ money_type() }}) as revenue,
    cast(s.searches_last_7d as bigint) as searches_last_7d,
    cast(coalesce(d.distinct_destinations, 0) as bigint) as distinct_destinations,
    {{ round_float('case when s.searches > 0 then 1.0 * s.clicks / s.searches else 0 end', 4) }} as click_through_rate,
    {{ round_float('s.avg_session_seconds', 1) }} as avg_session_seconds,
    {{ round_float(seconds_between('s.last_seen_at', 'b.feature_cutoff') ~ ' / 86400.0', 3) }} as days_since_last_seen,
    {{ round_float(seconds_between('s.first_seen_at', 'b.feature_cutoff') ~ ' / 86400.0', 3) }} as tenure_days,
    cast(coalesce(k.converts_next_period, 0) as integer) as converts_next_period
from sessions as s
cross join bounds as b
left join bookings as k on k.user_id = s.user_id
left join destinations as d on d.user_id = s.user_id
