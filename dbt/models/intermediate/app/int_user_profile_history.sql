-- SCD type 2 of user profiles: one row per period during which a user's tracked attributes
-- (home city and country, loyalty tier, marketing consent) stayed the same. A version whose
-- tracked attributes equal the previous one's (say, only the phone changed) opens no new row; a
-- change opens one at its updated_at and closes the previous row there (dbt_valid_to). The current
-- row has dbt_valid_to null. Rebuilt from the whole change-record history each run, so a late
-- version slots into place. No PII: the columns kept are the profile's non-personal ones.
with profiles as (
    select distinct
        user_id, home_city, home_country, loyalty_tier, marketing_consent, created_at, updated_at
    from {{ ref('stg_app_users') }}
),

versions as (
    select
        user_id, home_city, home_country, loyalty_tier, marketing_consent, created_at, updated_at,
        lag(home_city) over w as prev_city,
        lag(home_country) over w as prev_country,
        lag(loyalty_tier) over w as prev_tier,
        lag(marketing_consent) over w as prev_consent,
        row_number() over w as n
    from profiles
    window w as (partition by user_id order by updated_at)
),

changes as (
    select *
    from versions
    where n = 1
       or home_city is distinct from prev_city
       or home_country is distinct from prev_country
       or loyalty_tier is distinct from prev_tier
       or marketing_consent is distinct from prev_consent
)

select
    md5(user_id || '|' || cast(updated_at as varchar)) as dbt_scd_id,
    user_id,
    home_city,
    home_country,
    loyalty_tier,
    marketing_consent,
    created_at,
    updated_at as dbt_valid_from,
    lead(updated_at) over (partition by user_id order by updated_at) as dbt_valid_to
from changes
