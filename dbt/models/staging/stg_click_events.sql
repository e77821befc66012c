-- One row per click on a search result, typed from the JSON payload; duplicates dropped defensively.
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
    {{ unstaged_raw_rows('click_events') }}
),

parsed as (
    select
        event_id,
        event_time,
        batch_id,
        ingested_at,
        {{ json_fields('payload', ['user_id', 'session_id', 'search_event_id', 'result_id', 'result_position', 'result_type', 'result_price', 'result_destination', 'result_provider']) }} as f
    from source
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim(f[1]), '') as user_id,
    f[2] as session_id,
    f[3] as search_event_id,
    f[4] as result_id,
    cast(f[5] as integer) as result_position,
    f[6] as result_type,
    cast(f[7] as {{ money_type() }}) as result_price,
    nullif(trim(f[8]), '') as result_destination,
    f[9] as result_provider,
    batch_id,
    ingested_at,
    {{ run_stamp() }} as loaded_at
from parsed
