{#- The value of ``column`` most frequent per ``key`` in ``relation`` (ties: the alphabetically
    first), as rows (key, column). A ranked subquery rather than QUALIFY, which PostgreSQL lacks. -#}
{% macro most_frequent(relation, key, column) %}
    select {{ key }}, {{ column }}
    from (
        select
            {{ key }},
            {{ column }},
            row_number() over (partition by {{ key }} order by count(*) desc, {{ column }}) as place
        from {{ relation }}
        where {{ column }} is not null
        group by {{ key }}, {{ column }}
    ) as ranked
    where place = 1
{% endmacro %}
