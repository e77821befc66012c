{#- Reading the raw JSON payload by field name.

    A staging model names its fields once, as a mapping column -> dotted path, and uses both macros
    with that one mapping:

        {%- set fields = {'user_id': 'user_id', 'country': 'geo.country'} %}
        parsed as (select ..., {{ json_extract_fields('payload', fields) }} as fields from source),
        named as (select ..., {{ json_named_fields('fields', fields) }} from parsed)

    json_extract_fields parses each document once for all the paths (DuckDB's list form of
    json_extract_string; PostgreSQL builds the array from jsonb lookups), and json_named_fields
    gives every value its column name. The pairing of a name with its position happens inside the
    macros, from the same mapping, so adding or reordering fields cannot shift a column. -#}

{#- json_text(column, 'a.b'): the JSON value at a dotted path as text (NULL when missing or JSON null). -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'searchflow')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro postgres__json_text(column, path) -%}
    (cast({{ column }} as jsonb) #>> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}

{#- The text values at the mapping's paths as one array, in the mapping's order. -#}
{% macro json_extract_fields(column, fields) -%}
    {{ return(adapter.dispatch('json_extract_fields', 'searchflow')(column, fields)) }}
{%- endmacro %}

{% macro default__json_extract_fields(column, fields) -%}
    json_extract_string({{ column }}, [
        {%- for path in fields.values() %}'$.{{ path }}'{% if not loop.last %}, {% endif %}{% endfor -%}
    ])
{%- endmacro %}

{% macro postgres__json_extract_fields(column, fields) -%}
    array[
        {%- for path in fields.values() %}{{ postgres__json_text(column, path) }}{% if not loop.last %}, {% endif %}{% endfor -%}
    ]
{%- endmacro %}

{#- One column per mapping entry, named by its key, from the array json_extract_fields built. -#}
{% macro json_named_fields(array, fields) -%}
    {%- for name in fields.keys() %}
    {{ array }}[{{ loop.index }}] as {{ name }}{% if not loop.last %},{% endif %}
    {%- endfor %}
{%- endmacro %}
