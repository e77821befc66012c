{#- Incremental bookkeeping shared by the staging, intermediate and funnel models.

    Every staging row carries `loaded_at`: the start time of the dbt run that staged it. Every
    incremental intermediate (and funnel) row carries `refreshed_at`: the start time of the dbt run
    that last recomputed it. A model's watermark is the latest such stamp it holds; the upstream
    rows stamped after it are the ones this run must take into account. The stamp is dbt's own run
    time, not the raw layer's ingested_at, so a batch landed with an older ingested_at (a replay, a
    clock skew) or released by a person long after it landed is still picked up. -#}

{#- This run's stamp, as a timestamp literal both adapters read. -#}
{% macro run_stamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- The latest stamp of this (incremental) model; a date far in the past when it is empty, so that
    every upstream row counts as new. -#}
{% macro watermark(column='refreshed_at') -%}
    (select coalesce(max({{ column }}), cast('1900-01-01 00:00:00' as timestamp)) from {{ this }})
{%- endmacro %}

{#- The raw rows of `table` dbt may read: those of ingestion batches the ledger (ops.batches) has
    published; a landed, held or discarded batch stays invisible. One row per (event_id, event_time):
    the first copy by ingested_at, batch_id. An incremental run reads only the batches published
    since the model's last run (or not staged at all), minus the events already staged, so a batch
    released later is picked up by the next run and re-running never stages an event twice. -#}
{% macro published_raw_rows(table) -%}
    {#- The repeated (event_id, event_time) pairs are found from the two key columns alone, and only
        their rows go through the ranking window: every other row's payload streams straight through
        instead of being sorted. Ingestion lands each event_id once, so the repeats are normally
        none and this stays a defensive check. The payload-bearing scan is written out, not shared
        as a CTE, which an engine could materialise with every payload; the repeats' CTE holds keys.
        Their copies need no incremental filter: a pair already staged is not a new repeat. -#}
    {%- set published -%}
        select r.event_id, r.event_time, r.payload, r.batch_id, r.ingested_at
        from {{ source('raw', table) }} as r
        inner join {{ source('ops', 'batches') }} as b on b.batch_id = r.batch_id
        where b.stage = 'ingestion'
            and b.state = 'published'
        {%- if is_incremental() %}
            and (
                b.published_at > {{ watermark('loaded_at') }}
                or b.batch_id not in (select s.batch_id from {{ this }} as s)
            )
            and not exists (
                select 1 from {{ this }} as t
                where t.event_id = r.event_id and t.event_time = r.event_time
            )
        {%- endif %}
    {%- endset -%}
    with repeated as (
        select k.event_id, k.event_time
        from ({{ published }}) as k
        group by k.event_id, k.event_time
        having count(*) > 1
    )

    select single.event_id, single.event_time, single.payload, single.batch_id, single.ingested_at
    from ({{ published }}) as single
    where not exists (
        select 1 from repeated as d
        where d.event_id = single.event_id and d.event_time = single.event_time
    )
    union all
    select event_id, event_time, payload, batch_id, ingested_at
    from (
        select
            r.event_id, r.event_time, r.payload, r.batch_id, r.ingested_at,
            row_number() over (
                partition by r.event_id, r.event_time order by r.ingested_at, r.batch_id
            ) as copy_number
        from repeated as d
        inner join {{ source('raw', table) }} as r
            on r.event_id = d.event_id and r.event_time = d.event_time
        inner join {{ source('ops', 'batches') }} as b on b.batch_id = r.batch_id
        where b.stage = 'ingestion'
            and b.state = 'published'
    ) as copies
    where copy_number = 1
{%- endmacro %}

{#- The key of a producer session, (user, session_id), as one text value; `prefix` qualifies the
    columns (e.g. 's.'). int_search_sessions replaces every part of a producer session by it. -#}
{% macro session_group_key(prefix='') -%}
    coalesce({{ prefix }}user_id, '~anonymous') || '|' || coalesce({{ prefix }}session_id, '~none')
{%- endmacro %}

{#- fct_search_funnel's recompute window: the first day an incremental run recomputes in full, the
    start of the latest day already in the table minus var('funnel_lookback_hours'), as a one-row
    query with column `recompute_from`. -#}
{% macro funnel_recompute_from() -%}
    select
        cast({{ dbt.dateadd('hour', -1 * var('funnel_lookback_hours'), 'cast(max(event_date) as timestamp)') }} as date)
            as recompute_from
    from {{ this }}
{%- endmacro %}
