-- One row per conversion with the journey that led to it: its click and that click's search.
-- is_within_window: the conversion happened within var('conversion_window_hours') after its click
-- (a conversion 25 hours after its click is outside a 24-hour window). Only those count as journey
-- conversions (funnel, attribution); every conversion still counts as a booking of its user.
--
-- Incremental (delete+insert by conversion_id): a run recomputes the conversions staged since the
-- model's last run and those whose click, or whose click's search, was staged since (events can
-- arrive out of order: a click landed after its conversion changes the conversion's journey).
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='conversion_id',
        on_schema_change='fail'
    )
}}

with stg_conversions as (
    select * from {{ ref('stg_conversion_events') }}
),

stg_clicks as (
    select * from {{ ref('stg_click_events') }}
),

stg_searches as (
    select * from {{ ref('stg_search_events') }}
),
{%- if is_incremental() %}

touched as (
    select cv.event_id as conversion_id
    from stg_conversions as cv
    where cv.loaded_at > {{ watermark() }}
    union
    select cv.event_id
    from stg_conversions as cv
    inner join stg_clicks as cl on cl.event_id = cv.click_event_id
    where cl.loaded_at > {{ watermark() }}
    union
    select cv.event_id
    from stg_conversions as cv
    inner join stg_clicks as cl on cl.event_id = cv.click_event_id
    inner join stg_searches as s on s.event_id = cl.search_event_id
    where s.loaded_at > {{ watermark() }}
),
{%- endif %}

conversions as (
    select * from stg_conversions
    {%- if is_incremental() %}
    where event_id in (select conversion_id from touched)
    {%- endif %}
)

select
    cv.event_id as conversion_id,
    cv.user_id,
    cv.session_id,
    cv.event_time as converted_at,
    cv.event_date,
    cv.booking_value,
    cv.commission,
    cv.currency,
    cv.product_type,
    cv.provider,
    cl.event_id as click_event_id,
    cl.event_time as clicked_at,
    s.event_id as search_event_id,
    s.event_time as searched_at,
    s.user_id as search_user_id,
    s.session_id as search_session_id,
    coalesce(cl.result_destination, s.destination) as destination,
    s.platform,
    s.device_type,
    s.country,
    s.utm_source,
    s.utm_campaign,
    coalesce(
        cl.event_id is not null
        and cv.event_time >= cl.event_time
        and cv.event_time <= {{ dbt.dateadd('hour', var('conversion_window_hours'), 'cl.event_time') }},
        false
    ) as is_within_window,
    {{ run_stamp() }} as refreshed_at
from conversions as cv
left join stg_clicks as cl
    on cl.event_id = cv.click_event_id
left join stg_searches as s
    on s.event_id = cl.search_event_id
