-- Every version of every booking seen in the application database (app.bookings), typed, from
-- published ingestion batches. booking_id is the conversion event's id.
{{ config(materialized='view') }}

{%- set columns = [
    ('booking_id', 'varchar'), ('user_id', 'varchar'), ('status', 'varchar'),
    ('amount', 'decimal(12, 2)'), ('currency', 'varchar'), ('product_type', 'varchar'),
    ('created_at', 'timestamp'), ('updated_at', 'timestamp')
] %}

{{ published_app_rows('app_bookings', columns) }}
