-- A conversion is a journey conversion exactly when it happened within
-- var('conversion_window_hours') after its click (not before it): 25 hours after is outside.
select conversion_id, clicked_at, converted_at, is_within_window
from {{ ref('int_conversions') }}
where is_within_window <> coalesce(
    clicked_at is not null
    and converted_at >= clicked_at
    and converted_at <= {{ dbt.dateadd('hour', var('conversion_window_hours'), 'clicked_at') }},
    false
)
