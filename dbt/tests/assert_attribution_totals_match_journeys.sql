-- First-touch and last-touch attribution each credit every journey conversion (with a known
-- search) exactly once: their totals equal int_conversions' to the cent.
with expected as (
    select count(*) as conversions, coalesce(sum(booking_value), 0) as revenue
    from {{ ref('int_conversions') }}
    where is_within_window and search_event_id is not null
),

actual as (
    select
        coalesce(sum(first_touch_conversions), 0) as first_conversions,
        coalesce(sum(first_touch_revenue), 0) as first_revenue,
        coalesce(sum(last_touch_conversions), 0) as last_conversions,
        coalesce(sum(last_touch_revenue), 0) as last_revenue
    from {{ ref('mart_campaign_attribution') }}
)

select *
from expected cross join actual
where first_conversions <> conversions or last_conversions <> conversions
    or first_revenue <> revenue or last_revenue <> revenue
