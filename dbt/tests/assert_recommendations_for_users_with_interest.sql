-- Every known user who searched for a destination gets a recommendation row.
with interested as (
    select distinct user_id
    from {{ ref('int_user_journeys') }}
    where user_id is not null and destination is not null
),

keyed as (
    select user_id, {{ user_key('user_id') }} as user_key  -- the mart's key is the pseudonym
    from interested
)

select k.user_id
from keyed as k
left join {{ ref('mart_recommendations') }} as r on r.user_id = k.user_key
where r.user_id is null
