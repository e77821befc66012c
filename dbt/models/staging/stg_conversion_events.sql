-- One row per conversion (booking), typed from the JSON payload; money as exact decimals (cents).
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
    {{ unstaged_raw_rows('conversion_events') }}
),

parsed as (
    select
        event_id,
        event_time,
        batch_id,
        ingested_at,
        {{ json_fields('payload', ['user_id', 'session_id', 'click_event_id', 'booking_value', 'commission', 'currency', 'product_type', 'provider']) }} as f
    from source
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim(f[1]), '') as user_id,
    f[2] as session_id,
    f[3] as click_event_id,
    cast(f[4] as {{ money_type() }}) as booking_value,
    cast(f[5] as {{ money_type() }}) as commission,
    f[6] as currency,
    f[7] as product_type,
    f[8] as provider,
    batch_id,
    ingested_at,
    {{ run_stamp() }} as loaded_at
from parsed
