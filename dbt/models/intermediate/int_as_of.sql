-- The one as-of time every mart uses: the latest event time in the raw layer, never the wall clock,
-- so rebuilding unchanged data gives identical marts (and a re-sync writes nothing).
select max(latest_event_time) as as_of
from (
    select max(event_time) as latest_event_time from {{ source('raw', 'search_events') }}
    union all
    select max(event_time) from {{ source('raw', 'click_events') }}
    union all
    select max(event_time) from {{ source('raw', 'conversion_events') }}
) as latest
