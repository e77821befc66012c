-- Every known user who searched for a destination gets a recommendation row.
select distinct j.user_id
from {{ ref('int_user_journeys') }} as j
left join {{ ref('mart_recommendations') }} as r on r.user_id = {{ user_key('j.user_id') }}
where j.user_id is not null and j.destination is not null and r.user_id is null
