{#- Schemas are exactly the names configured (staging, intermediate, snapshots), never
    `<target schema>_<name>`: the sync stage and the docs name them literally.

    The marts' schemas (var('mart_schemas'): analytics, marketing, ml) carry the build's version:
    dbt builds a candidate, `analytics__<version>`, and only publication (searchflow/transform/
    publish.py) makes it the served version by repointing the views `analytics.*`, `marketing.*`,
    `ml.*` to it. A plain `dbt build` builds the candidate `__dev` (var('mart_version')) and never
    publishes. Models marked `meta: {after_publication: true}` (views over the segment snapshot,
    which only ever records published marts) are built straight into the published schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set name = (custom_schema_name or target.schema) | trim -%}
    {%- set meta = (node.config.meta if node is not none and node.config is defined else {}) or {} -%}
    {%- if name in var('mart_schemas') and not meta.get('after_publication', false) -%}
        {{ name }}__{{ var('mart_version') }}
    {%- else -%}
        {{ name }}
    {%- endif -%}
{%- endmacro %}
