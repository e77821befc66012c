-- One row per search event, typed from the JSON payload. Duplicates are dropped defensively
-- (ingestion already lands each event_id once): byte-identical re-sends share event_id and
-- event_time, and partitioning by both lets a filter on event_time reach the raw scan.
with source as (
    select
        event_id,
        event_time,
        payload,
        batch_id,
        ingested_at,
        row_number() over (
            partition by event_id, event_time order by ingested_at, batch_id
        ) as copy_number
    from {{ source('raw', 'search_events') }}
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim({{ json_text('payload', 'user_id') }}), '') as user_id,
    {{ json_text('payload', 'session_id') }} as session_id,
    {{ json_text('payload', 'query') }} as query,
    nullif(trim({{ json_text('payload', 'destination') }}), '') as destination,
    cast({{ json_text('payload', 'results_count') }} as integer) as results_count,
    cast({{ json_text('payload', 'page') }} as integer) as page,
    {{ json_text('payload', 'platform') }} as platform,
    {{ json_text('payload', 'device_type') }} as device_type,
    {{ json_text('payload', 'geo.country') }} as country,
    {{ json_text('payload', 'geo.city') }} as city,
    nullif(trim({{ json_text('payload', 'utm_source') }}), '') as utm_source,
    nullif(trim({{ json_text('payload', 'utm_campaign') }}), '') as utm_campaign,
    batch_id,
    ingested_at
from source
where copy_number = 1
