{#- Schemas are exactly the names configured (staging, intermediate, analytics, marketing, ml,
    snapshots), never `<target schema>_<name>`: the sync stage and the docs name them literally. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
