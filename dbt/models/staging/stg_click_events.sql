-- One row per click on a search result, typed from the JSON payload; duplicates dropped defensively.
-- Incremental table: each run parses only the published raw rows not staged yet (see
-- published_raw_rows) and appends them, so the JSON is parsed once per event and every downstream
-- read is a typed scan.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail'
    )
}}

{%- set payload_fields = {
    'user_id': 'user_id',
    'session_id': 'session_id',
    'search_event_id': 'search_event_id',
    'result_id': 'result_id',
    'result_position': 'result_position',
    'result_type': 'result_type',
    'result_price': 'result_price',
    'result_destination': 'result_destination',
    'result_provider': 'result_provider'
} %}

with source as (
    {{ published_raw_rows('click_events') }}
),

parsed as (
    select
        event_id,
        event_time,
        batch_id,
        ingested_at,
        {{ json_extract_fields('payload', payload_fields) }} as fields
    from source
),

named as (
    select
        event_id,
        event_time,
        batch_id,
        ingested_at,
        {{ json_named_fields('fields', payload_fields) }}
    from parsed
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim(user_id), '') as user_id,
    session_id,
    search_event_id,
    result_id,
    cast(result_position as integer) as result_position,
    result_type,
    cast(result_price as {{ money_type() }}) as result_price,
    nullif(trim(result_destination), '') as result_destination,
    result_provider,
    batch_id,
    ingested_at,
    {{ run_stamp() }} as loaded_at
from named
