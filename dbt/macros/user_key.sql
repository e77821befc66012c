{#- The user key analytics, marketing and ml carry instead of the application's user id: a
    pseudonym, HMAC-SHA256 under the PII key (searchflow/pii.py: pseudonym).

    pseudonym(column) computes it: the DuckDB function sf_user_key that
    searchflow/restricted_plugin.py registers on dbt's connection (Python, one HMAC per row). Only
    the key map pii_user_keys calls it, once per user id it has not seen before (an incremental
    model in the restricted store).

    user_key(column) reads it from that map: a lookup the engine runs as one hash join, so a mart
    (or a data test) costs no HMAC per row, whatever its size. The map lives in the restricted
    store, never in the warehouse analysts read (docs/governance.md, "Pseudonyms"); dbt's
    connection has both attached. Unit tests set var('pseudonymize', false) to state expectations
    in readable ids; the Postgres target has no such function and keeps the ids. -#}
{% macro user_key(column) -%}
    {%- if target.type == 'duckdb' and var('pseudonymize', true) -%}
        {#- the map's columns renamed, so that an unqualified `column` binds to the caller's row -#}
        (select k.sf_mapped_key from (
            select user_id as sf_mapped_id, user_key as sf_mapped_key from {{ ref('pii_user_keys') }}
        ) as k where k.sf_mapped_id = {{ column }})
    {%- else -%}
        {{ column }}
    {%- endif -%}
{%- endmacro %}

{% macro pseudonym(column) -%}
    {%- if target.type == 'duckdb' and var('pseudonymize', true) -%}
        sf_user_key({{ column }})
    {%- else -%}
        {{ column }}
    {%- endif -%}
{%- endmacro %}
