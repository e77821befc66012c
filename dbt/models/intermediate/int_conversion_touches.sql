-- One row per journey conversion (within the window of its click) with its first and last touch:
-- the campaign of the earliest and of the latest search of the same person up to the conversion.
-- The person is the known user of the conversion's originating search, or for anonymous journeys
-- that search's session. Ties: earliest then smallest search id; latest then largest search id.
-- Kept per conversion: mart_campaign_attribution counts it over all days, mart_campaign_performance
-- by day.
with conversions as (
    select
        conversion_id,
        search_event_id,
        converted_at,
        event_date,
        booking_value,
        coalesce(search_user_id, '~session:' || search_session_id) as person_key
    from {{ ref('int_conversions') }}
    where is_within_window and search_event_id is not null
),

searches as (
    select
        coalesce(user_id, '~session:' || session_id) as person_key,
        search_event_id,
        searched_at,
        coalesce(utm_source, '(none)') as utm_source,
        coalesce(utm_campaign, '(none)') as utm_campaign
    from {{ ref('int_user_journeys') }}
),

touch_candidates as (
    select c.conversion_id, s.search_event_id, s.searched_at
    from conversions as c
    inner join searches as s
        on s.person_key = c.person_key
        and (s.searched_at <= c.converted_at or s.search_event_id = c.search_event_id)
),

bounds as (
    select conversion_id, min(searched_at) as first_at, max(searched_at) as last_at
    from touch_candidates
    group by conversion_id
),

picked as (
    select
        t.conversion_id,
        min(case when t.searched_at = b.first_at then t.search_event_id end) as first_search_id,
        max(case when t.searched_at = b.last_at then t.search_event_id end) as last_search_id
    from touch_candidates as t
    inner join bounds as b on b.conversion_id = t.conversion_id
    group by t.conversion_id
)

select
    c.conversion_id,
    c.converted_at,
    c.event_date,
    c.booking_value,
    f.utm_source as first_utm_source,
    f.utm_campaign as first_utm_campaign,
    l.utm_source as last_utm_source,
    l.utm_campaign as last_utm_campaign
from picked as p
inner join conversions as c on c.conversion_id = p.conversion_id
inner join searches as f on f.search_event_id = p.first_search_id
inner join searches as l on l.search_event_id = p.last_search_id
