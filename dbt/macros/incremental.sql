{#- Incremental bookkeeping shared by the staging and intermediate models.

    Every staging row carries `loaded_at`: the start time of the dbt run that staged it. Every
    incremental intermediate row carries `refreshed_at`: the start time of the dbt run that last
    recomputed it. A model's watermark is the latest `refreshed_at` it holds; the staging rows (or
    upstream intermediate rows) stamped after it are the ones this run must take into account.
    The stamp is dbt's own run time, not the raw layer's ingested_at, so a raw batch landed with an
    older ingested_at (a replay, a clock skew) is still picked up: staging finds new raw rows by
    batch and event id, never by time. -#}

{#- This run's stamp, as a timestamp literal both adapters read. -#}
{% macro run_stamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- The latest refreshed_at of this (incremental) model; a date far in the past when it is empty,
    so that every upstream row counts as new. -#}
{% macro watermark(column='refreshed_at') -%}
    (select coalesce(max({{ column }}), cast('1900-01-01 00:00:00' as timestamp)) from {{ this }})
{%- endmacro %}

{#- The raw rows of `table` not staged yet, one per (event_id, event_time): the first copy by
    ingested_at, batch_id, like a full build keeps. Candidates are the rows of batches not staged
    yet and of the latest staged ingestion time on (a batch landed in several commits); an anti-join
    on the staged ids drops those already there, so re-running never stages an event twice. -#}
{% macro unstaged_raw_rows(table) -%}
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
        {%- if is_incremental() %}
        where (
                not exists (select 1 from {{ this }} as b where b.batch_id = r.batch_id)
                or r.ingested_at >= (select max(m.ingested_at) from {{ this }} as m)
            )
            and not exists (
                select 1 from {{ this }} as t
                where t.event_id = r.event_id and t.event_time = r.event_time
            )
        {%- endif %}
    ) as copies
    where copy_number = 1
{%- endmacro %}
