-- The one as-of time every mart uses: the latest event time of the published events (staging),
-- never the wall clock, so rebuilding unchanged data gives identical marts (and a re-sync writes
-- nothing), and a held batch's events cannot move it.
with searches as (
    select * from {{ ref('stg_search_events') }}
),

clicks as (
    select * from {{ ref('stg_click_events') }}
),

conversions as (
    select * from {{ ref('stg_conversion_events') }}
)

select max(latest_event_time) as as_of
from (
    select max(event_time) as latest_event_time from searches
    union all
    select max(event_time) from clicks
    union all
    select max(event_time) from conversions
) as latest
