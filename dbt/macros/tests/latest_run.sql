{#- Data tests scoped to what the latest run wrote.

    A test configured with `where: "latest_run:<stamp column>"` reads only the rows of its model
    whose stamp (staging: loaded_at, the incremental intermediates: refreshed_at, see
    macros/incremental.sql) is the model's latest one: after a full build every row, after an
    incremental run the rows it appended or recomputed. The rows of earlier runs were tested when
    they were written, and the models keep them apart from the new ones by their own keys (staging
    stages an event not staged yet, a delete+insert model replaces every row of a key it
    recomputes), so an incremental build tests the new batch instead of the whole history.

    Any other `where` is dbt's own (the global get_where_subquery). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') or '' -%}
    {%- if where.startswith('latest_run:') -%}
        {%- set stamp = where.split(':', 1)[1] | trim -%}
        {%- set scoped -%}
            (select * from {{ relation }} where {{ stamp }} = (select max({{ stamp }}) from {{ relation }})) dbt_subquery
        {%- endset -%}
        {%- do return(scoped) -%}
    {%- endif -%}
    {%- do return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) -%}
{%- endmacro %}
