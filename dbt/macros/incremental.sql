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
    select event_id, event_time, payload, batch_id, ingested_at
    from (
        select
            r.event_id,
            r.event_time,
            r.payload,
            r.batch_id,
            r.ingested_at,
            row_number() over (
                partition by r.event_id, r.event_time order by r.ingested_at, r.batch_id
            ) as copy_number
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
