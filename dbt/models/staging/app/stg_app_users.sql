-- Every version of every user profile seen in the application database (app.users), typed, from
-- published ingestion batches, without the PII: email, full_name and phone are selected only by
-- the restricted model (models/restricted/pii_user_contacts.sql), which lives in a separate
-- owner-only file, so no address, name or phone is readable in this warehouse outside
-- raw.app_users (docs/governance.md, the data map).
{{ config(materialized='view') }}

{%- set columns = [
    ('user_id', 'varchar'), ('home_city', 'varchar'), ('home_country', 'varchar'),
    ('loyalty_tier', 'varchar'), ('marketing_consent', 'boolean'), ('created_at', 'timestamp'),
    ('updated_at', 'timestamp')
] %}

{{ published_app_rows('app_users', columns) }}
