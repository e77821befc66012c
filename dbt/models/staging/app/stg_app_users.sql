-- Every version of every user profile seen in the application database (app.users), typed, from
-- published ingestion batches. The one model that keeps the PII (email, full_name, phone): the
-- models after it select the profile's other columns only, so no address, name or phone reaches
-- analytics, marketing or ml (docs/governance.md, the data map).
{{ config(materialized='view') }}

{%- set columns = [
    ('user_id', 'varchar'), ('email', 'varchar'), ('full_name', 'varchar'), ('phone', 'varchar'),
    ('home_city', 'varchar'), ('home_country', 'varchar'), ('loyalty_tier', 'varchar'),
    ('marketing_consent', 'boolean'), ('created_at', 'timestamp'), ('updated_at', 'timestamp')
] %}

{{ published_app_rows('app_users', columns) }}
