-- SCD type 2 of booking status: one row per period during which a booking kept its status
-- (confirmed, cancelled, refunded). A version with the same status as the previous one opens no
-- new row; a change opens one at its updated_at and closes the previous one (dbt_valid_to). The
-- current row has dbt_valid_to null. Rebuilt from the whole change-record history each run.
with bookings as (
    select distinct booking_id, user_id, status, amount, currency, created_at, updated_at
    from {{ ref('stg_app_bookings') }}
),

versions as (
    select
        booking_id, user_id, status, amount, currency, created_at, updated_at,
        lag(status) over (partition by booking_id order by updated_at) as prev_status
    from bookings
),

changes as (
    select * from versions where prev_status is null or status is distinct from prev_status
)

select
    md5(booking_id || '|' || cast(updated_at as varchar)) as dbt_scd_id,
    booking_id,
    user_id,
    status,
    amount,
    currency,
    created_at,
    updated_at as dbt_valid_from,
    lead(updated_at) over (partition by booking_id order by updated_at) as dbt_valid_to
from changes
