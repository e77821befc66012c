{#- The application's change records (raw.app_users / raw.app_bookings, written by
    `searchflow ingest --source app`) of published ingestion batches only. Before the first app
    ingest the raw table does not exist: an empty relation with the same columns stands in, so
    the models (and the marts reading them) build on events alone. -#}
{% macro published_app_rows(table, columns) -%}
    {%- set src = source('raw', table) -%}
    {%- set found = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier) -%}
    {%- if found is not none -%}
    select {{ columns | map(attribute=0) | join(', ') }}, batch_id
    from {{ src }}
    where batch_id in (
        select batch_id from {{ source('ops', 'batches') }}
        where stage = 'ingestion' and state = 'published'
    )
    {%- else -%}
    select {% for name, type in columns %}cast(null as {{ type }}) as {{ name }}, {% endfor %}cast(null as varchar) as batch_id
    where false
    {%- endif -%}
{%- endmacro %}
