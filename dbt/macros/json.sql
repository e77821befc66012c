{#- json_text(column, 'a.b'): the JSON value at a dotted path as text (NULL when missing or JSON null).
    Dispatched so the same staging models build on DuckDB (JSON column) and PostgreSQL (jsonb). -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'searchflow')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro postgres__json_text(column, path) -%}
    (cast({{ column }} as jsonb) #>> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}
