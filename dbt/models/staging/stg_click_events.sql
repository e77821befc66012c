-- One row per click on a search result, typed from the JSON payload; duplicates dropped defensively.
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
    from {{ source('raw', 'click_events') }}
)

select
    event_id,
    event_time,
    cast(event_time as date) as event_date,
    nullif(trim({{ json_text('payload', 'user_id') }}), '') as user_id,
    {{ json_text('payload', 'session_id') }} as session_id,
    {{ json_text('payload', 'search_event_id') }} as search_event_id,
    {{ json_text('payload', 'result_id') }} as result_id,
    cast({{ json_text('payload', 'result_position') }} as integer) as result_position,
    {{ json_text('payload', 'result_type') }} as result_type,
    cast({{ json_text('payload', 'result_price') }} as {{ money_type() }}) as result_price,
    nullif(trim({{ json_text('payload', 'result_destination') }}), '') as result_destination,
    {{ json_text('payload', 'result_provider') }} as result_provider,
    batch_id,
    ingested_at
from source
where copy_number = 1
