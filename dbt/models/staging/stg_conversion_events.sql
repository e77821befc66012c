-- One row per conversion (booking), typed from the JSON payload; money as exact decimals (cents).
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
    'click_event_id': 'click_event_id',
    'booking_value': 'booking_value',
    'commission': 'commission',
    'currency': 'currency',
    'product_type': 'product_type',
    'provider': 'provider'
} %}

with source as (
    {{ published_raw_rows('conversion_events') }}
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
    click_event_id,
    cast(booking_value as {{ money_type() }}) as booking_value,
    cast(commission as {{ money_type() }}) as commission,
    currency,
    product_type,
    provider,
    batch_id,
    ingested_at,
    {{ run_stamp() }} as loaded_at
from named
