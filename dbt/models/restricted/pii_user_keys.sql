-- The way back from a pseudonym to the application's user id: one row per user id seen in the
-- events or the application's profiles, with its user key (macros/user_key.sql). In the
-- restricted store beside the contacts (searchflow/restricted.py): the syncs read it to write the
-- real id to crm.* and reco:{user_id}, `searchflow forget` erases the user's row, and every mart
-- reads its pseudonyms from here (macro user_key) instead of computing one per row.
-- Incremental (append): a run keys only the ids of events staged since its last run (and of the
-- profiles) that the map does not hold yet, so each id's HMAC is computed once. A key rotation
-- needs `--full-refresh`.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    database=('restricted' if target.type == 'duckdb' else target.database),
    schema='pii',
    alias='user_keys',
) }}

{%- set since = watermark('loaded_at') if is_incremental() else none %}

with ids as (
    {%- for model in ['stg_search_events', 'stg_click_events', 'stg_conversion_events'] %}
    select user_id from {{ ref(model) }}
    where user_id is not null{% if since %} and loaded_at > {{ since }}{% endif %}
    union
    {%- endfor %}
    select user_id from {{ ref('stg_app_users') }} where user_id is not null
)

select {{ pseudonym('user_id') }} as user_key, user_id, {{ run_stamp() }} as loaded_at
from ids
{%- if is_incremental() %}
where not exists (select 1 from {{ this }} as k where k.user_id = ids.user_id)
{%- endif %}
