-- The way back from a pseudonym to the application's user id: one row per user id seen in the
-- events or the application's profiles, with its user key (macros/user_key.sql). In the
-- restricted store beside the contacts (searchflow/restricted.py): the syncs read it to write the
-- real id to crm.* and reco:{user_id}, and `searchflow forget` erases the user's row.
{{ config(
    materialized='table',
    database=('restricted' if target.type == 'duckdb' else target.database),
    schema='pii',
    alias='user_keys',
) }}

with ids as (
    select user_id from {{ ref('stg_search_events') }} where user_id is not null
    union
    select user_id from {{ ref('stg_click_events') }} where user_id is not null
    union
    select user_id from {{ ref('stg_conversion_events') }} where user_id is not null
    union
    select user_id from {{ ref('stg_app_users') }} where user_id is not null
)

select {{ user_key('user_id') }} as user_key, user_id
from ids
