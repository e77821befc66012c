{#- Generic tests used across the project (no dbt packages: `dbt deps` needs no network). -#}

{#- Every value of the column lies in [min_value, max_value] (NULLs ignored). -#}
{% test value_between(model, column_name, min_value, max_value) %}
select {{ column_name }} as bad_value
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}

{#- The combination of columns identifies a row (NULLs compared as equal). -#}
{% test unique_combination(model, combination) %}
select {{ combination | join(', ') }}, count(*) as copies
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}

{#- The table has exactly one row. -#}
{% test single_row(model) %}
select count(*) as row_count from {{ model }} having count(*) <> 1
{% endtest %}
