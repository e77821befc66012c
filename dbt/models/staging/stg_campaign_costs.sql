-- The campaign price list (seed campaign_costs), named and typed like the other staging models.
with costs as (
    select * from {{ ref('campaign_costs') }}
)

select
    utm_source,
    utm_campaign,
    utm_source || ' / ' || utm_campaign as campaign_key,
    cast(cost_per_click as {{ money_type() }}) as cost_per_click,
    cast(daily_fee as {{ money_type() }}) as daily_fee
from costs
