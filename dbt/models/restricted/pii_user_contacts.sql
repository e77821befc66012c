-- The restricted model: every version of every user's contact details (email, full name, phone)
-- with the marketing consent of that version, valid from its updated_at until the next version's.
-- The only model holding PII. On DuckDB it is built in the restricted store, a separate owner-only
-- file attached as `restricted` (searchflow/restricted.py), so nothing analysts read holds an
-- address; the email sync reads it to address consented users at sync time.
{{ config(
    materialized='table',
    database=('restricted' if target.type == 'duckdb' else target.database),
    schema='pii',
    alias='user_contacts',
) }}

{%- set columns = [
    ('user_id', 'varchar'), ('email', 'varchar'), ('full_name', 'varchar'), ('phone', 'varchar'),
    ('marketing_consent', 'boolean'), ('created_at', 'timestamp'), ('updated_at', 'timestamp')
] %}

with versions as (
    select distinct user_id, email, full_name, phone, marketing_consent, created_at, updated_at
    from ({{ published_app_rows('app_users', columns) }}) as published
)

select
    user_id,
    email,
    full_name,
    phone,
    marketing_consent,
    created_at,
    updated_at as valid_from,
    lead(updated_at) over (partition by user_id order by updated_at) as valid_to
from versions
