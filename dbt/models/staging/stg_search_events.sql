-- One row per search event, typed from the JSON payload. Duplicates are dropped defensively
-- (ingestion already lands each event_id once): byte-identical re-sends share event_id and
-- event_time, and partitioning by both lets a filter on event_time reach the raw scan.
-- Incremental table: each run parses only the raw rows not staged yet (see unstaged_raw_rows) and
-- appends them, so the JSON is parsed once per event and every downstream read is a typed scan.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail'
    )
}}

with source as (
    {{ unstaged_raw_rows('search_events') }}
),

parsed as (
    select
        event_id,
        event_time,
        batch_id,
        ingested_at,
        {{ json_fields('payload', ['user_id', 'session_id', 'query', 'destination', 'results_count', 'page', 'platform', 'device_type', 'geo.country', 'geo.city', 'utm_source', 'utm_campaign']) }} as f
    from source
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim(f[1]), '') as user_id,
    f[2] as session_id,
    f[3] as query,
    nullif(trim(f[4]), '') as destination,
    cast(f[5] as integer) as results_count,
    cast(f[6] as integer) as page,
    f[7] as platform,
    f[8] as device_type,
    f[9] as country,
    f[10] as city,
    nullif(trim(f[11]), '') as utm_source,
    nullif(trim(f[12]), '') as utm_campaign,
    batch_id,
    ingested_at,
    {{ run_stamp() }} as loaded_at
from parsed
