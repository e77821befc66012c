-- One row per conversion (booking), typed from the JSON payload; money as exact decimals (cents).
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
    from {{ source('raw', 'conversion_events') }}
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim({{ json_text('payload', 'user_id') }}), '') as user_id,
    {{ json_text('payload', 'session_id') }} as session_id,
    {{ json_text('payload', 'click_event_id') }} as click_event_id,
    cast({{ json_text('payload', 'booking_value') }} as {{ money_type() }}) as booking_value,
    cast({{ json_text('payload', 'commission') }} as {{ money_type() }}) as commission,
    {{ json_text('payload', 'currency') }} as currency,
    {{ json_text('payload', 'product_type') }} as product_type,
    {{ json_text('payload', 'provider') }} as provider,
    batch_id,
    ingested_at
from source
where copy_number = 1
