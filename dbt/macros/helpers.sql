{#- Small portable helpers shared by the models. -#}

{#- Seconds from `earlier` to `later` as a float (DuckDB and PostgreSQL). -#}
{% macro seconds_between(earlier, later) -%}
    {{ return(adapter.dispatch('seconds_between', 'searchflow')(earlier, later)) }}
{%- endmacro %}

{% macro default__seconds_between(earlier, later) -%}
    (epoch({{ later }}) - epoch({{ earlier }}))
{%- endmacro %}

{% macro postgres__seconds_between(earlier, later) -%}
    (extract(epoch from {{ later }}) - extract(epoch from {{ earlier }}))
{%- endmacro %}

{#- x rounded to `places` decimals as a float; PostgreSQL has no round(double, int). -#}
{% macro round_float(x, places) -%}
    cast(round(cast({{ x }} as numeric(20, 10)), {{ places }}) as double precision)
{%- endmacro %}

{#- Money: exact decimal with cents. -#}
{% macro money_type() -%}numeric(18, 2){%- endmacro %}
