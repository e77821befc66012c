{#- The user key analytics, marketing and ml carry instead of the application's user id: a
    pseudonym, HMAC-SHA256 under the PII key (searchflow/pii.py: pseudonym), computed by the
    DuckDB function sf_user_key that searchflow/restricted_plugin.py registers on dbt's
    connection. The syncs map it back to the id through restricted.pii.user_keys. Unit tests set
    var('pseudonymize', false) to state expectations in readable ids; the Postgres target has no
    such function and keeps the ids (docs/governance.md, "Pseudonyms"). -#}
{% macro user_key(column) -%}
    {%- if target.type == 'duckdb' and var('pseudonymize', true) -%}
        sf_user_key({{ column }})
    {%- else -%}
        {{ column }}
    {%- endif -%}
{%- endmacro %}
