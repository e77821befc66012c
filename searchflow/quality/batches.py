"""What each gate validates: the batch a stage just produced, as compact frames (or a Postgres table).

GX's SQL data source does not work on DuckDB (every metric comes back empty), so DuckDB data is
validated as dataframe batches. Generation and ingestion never hand GX their rows: their row-level
rules are counted set-wise (Arrow kernels, DuckDB) into one-row frames by
:mod:`searchflow.quality.checks`. The transformation's marts (one row per user) and the Redis
sample are small and validated row by row; the Postgres destinations go through GX's SQL source.

The warehouse connection is opened only for the reads and closed before GX runs. When the calling
stage still holds the file in this process, a read-only open is refused (DuckDB forbids two
configurations of one file per process), so we fall back to a read-write connection, which shares
that stage's database instance.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from searchflow.config import Settings
from searchflow.contract import SYNC_NAMES, SYNCS, reco_owned_list
from searchflow.errors import SearchflowError
from searchflow.events import EVENT_TYPES

# The checkpoint of each Postgres sync's gate (named after the destination table it validates).
POSTGRES_CHECKPOINTS = {"user_segments": "sync.user_segments", "email_triggers": "sync.email_queue"}
MART_OF = {spec.name: spec.mart for spec in SYNCS}
SEGMENTS_MART = MART_OF["user_segments"]
RECO_MART = MART_OF["recommendations"]
FUNNEL = "analytics.fct_search_funnel"


@dataclass
class StageBatch:
    """One gate's input: the checkpoint to run, a frame per validation definition, the parameters.

    ``frames`` maps a validation definition name to its dataframe, or to None for a SQL asset
    (Postgres), which GX reads itself.
    """

    checkpoint: str
    frames: dict[str, pd.DataFrame | None]
    parameters: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    postgres_url: str | None = None
    # per validation definition: the rule figures behind its one-row frame (see checks.RuleSet)
    rules: dict[str, Any] = field(default_factory=dict)


@contextmanager
def read_warehouse(settings: Settings) -> Iterator[Any]:
    """A short-lived warehouse connection for reads (see the module docstring on the fallback)."""
    import duckdb

    from searchflow import warehouse

    try:
        con = warehouse.connect(settings, read_only=True)
    except duckdb.ConnectionException:
        con = warehouse.connect(settings, read_only=False)
    try:
        yield con
    finally:
        con.close()


def _rate_band(rate: float, n: int, tolerance: float) -> tuple[float, float]:
    """The band a batch's observed rate must fall in: relative tolerance, widened for small n.

    Four binomial standard errors keep a correct small batch from failing by chance.
    """
    slack = max(tolerance * rate, 4 * math.sqrt(max(rate * (1 - rate), 1e-9) / max(n, 1)))
    return max(0.0, rate - slack), min(1.0, rate + slack)


def _generated_tables(data: Any) -> dict[str, Any]:
    """The generator's well-formed events per type as Arrow tables (a GeneratedBatch, or frames)."""
    import pyarrow as pa

    if data is None:
        raise SearchflowError("the generation gate needs the generated batch; pass data= to gate()")
    tables: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        if hasattr(data, "to_arrow"):
            tables[event_type] = data.to_arrow(event_type)
            continue
        frame = data.get(event_type, data.get(f"{event_type}_events"))
        if frame is None:
            raise SearchflowError(f"the generated batch has no {event_type} events frame")
        tables[event_type] = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=False)
        )
    return tables


def _import_validator() -> None:
    """Import what the gate validates with (seconds of CPU), while generation workers build."""
    import great_expectations  # noqa: F401


def generation(settings: Settings, summary: Mapping[str, Any], data: Any) -> StageBatch:
    """The generated batch: its schema, and its rule figures and rates in one row (see checks)."""
    from searchflow.quality import checks

    if hasattr(data, "survey"):  # a batch built in parts (generator/parts.py): figures per part
        # the parts are built in worker processes: Great Expectations is imported meanwhile
        parts = data.survey(checks.part_judge(), meanwhile=_import_validator)
        rules = checks.merge_rules(parts)
        tables = data.schema_tables()
        n_search, n_click, n_conv = (sum(n[t] for _, n in parts) for t in EVENT_TYPES)
    else:
        tables = _generated_tables(data)
        rules = checks.generation_rules(tables)
        n_search, n_click, n_conv = (tables[t].num_rows for t in EVENT_TYPES)
    config = getattr(data, "config", None)
    ctr = float(getattr(config, "click_through_rate", summary.get("click_through_rate", 0.30)))
    cvr = float(getattr(config, "conversion_rate", summary.get("conversion_rate", 0.10)))
    ctr_min, ctr_max = _rate_band(ctr, n_search, settings.dq_rate_tolerance)
    cvr_min, cvr_max = _rate_band(cvr, n_click, settings.dq_rate_tolerance)
    return StageBatch(
        checkpoint="generation",
        frames={
            "generation.schema": checks.schema_frame(tables),
            "generation.batch": rules.frame(),
        },
        parameters={
            "max_orphan_share": settings.dq_max_orphan_share,
            "ctr_min": ctr_min,
            "ctr_max": ctr_max,
            "cvr_min": cvr_min,
            "cvr_max": cvr_max,
        },
        counts={"search": n_search, "click": n_click, "conversion": n_conv},
        rules={"generation.batch": rules},
    )


_LANDED_BEFORE = """
    SELECT count(*) FROM raw.{t}_events o
    WHERE o.batch_id <> $batch
      AND o.event_id IN (SELECT event_id FROM raw.{t}_events WHERE batch_id = $batch)"""


def _read(settings: Settings) -> Any:
    """A query runner on a fresh short-lived warehouse connection (for quarantined rows)."""

    def read(sql: str, params: dict[str, Any]) -> pd.DataFrame:
        with read_warehouse(settings) as con:
            return con.execute(sql, params).df()

    return read


def _share(dead: int, landed: int) -> float:
    """Dead letters over the lines they and the landed rows came from (0 without any)."""
    return dead / (landed + dead) if landed + dead else 0.0


def _app_landed(con: Any, batch_id: str) -> dict[str, int]:
    """Rows an ``app`` batch landed per application table (none for an events batch)."""
    landed = {}
    for name in ("app_users", "app_bookings"):
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'raw' AND table_name = $name",
            {"name": name},
        ).fetchone()[0]
        if exists:
            n = con.execute(
                f"SELECT count(*) FROM raw.{name} WHERE batch_id = $batch", {"batch": batch_id}
            ).fetchone()[0]
            if n:
                landed[name] = int(n)
    return landed


def ingestion(settings: Settings, summary: Mapping[str, Any]) -> StageBatch:
    """The ingestion batch's rule figures (one DuckDB query per type), dead letters, re-landed ids.

    Only one row per query leaves DuckDB: the rows themselves are read again only for a failed
    rule, to quarantine them.
    """
    from searchflow.quality import checks

    batch_id = str(summary.get("batch_id") or "")
    if not batch_id:
        raise SearchflowError("the ingestion gate needs the batch_id of the ingestion summary")
    params = {"batch": batch_id}
    now = datetime.now(UTC).replace(tzinfo=None)  # raw event times are naive UTC
    with read_warehouse(settings) as con:
        rules, landed_by_type = checks.ingestion_rules(con, batch_id, now, _read(settings))
        dead, dead_records = con.execute(
            "SELECT count(*) FILTER (WHERE NOT coalesce(starts_with(event_type, 'app_'), false)), "
            "count(*) FILTER (WHERE starts_with(event_type, 'app_')) "
            "FROM raw.dead_letter_events WHERE batch_id = $batch",
            params,
        ).fetchone()
        before = sum(
            con.execute(_LANDED_BEFORE.format(t=t), params).fetchone()[0] for t in EVENT_TYPES
        )
        app_landed = _app_landed(con, batch_id)
    landed, records = sum(landed_by_type.values()), sum(app_landed.values())
    rules.figures.update(
        landed=landed + records,
        dead_letters=int(dead + dead_records),
        # Events and the site's records each against their own lines: a batch's many profile
        # records must not dilute its malformed events below the threshold.
        dead_letter_share=max(_share(dead, landed), _share(dead_records, records)),
        ids_landed_before=int(before),
        # app batches: the source against the raw layer (ingest/app.py); event batches: 1
        source_accuracy=float(summary.get("source_accuracy", 1.0)),
    )
    landed_by_type.update(app_landed)
    return StageBatch(
        checkpoint="ingestion",
        frames={"ingestion.batch": rules.frame()},
        parameters={
            "max_orphan_share": settings.dq_max_orphan_share,
            "max_dead_letter_share": settings.dq_max_dead_letter_share,
            "max_seconds_ahead": settings.dq_future_seconds,
            "min_source_accuracy": settings.dq_min_source_accuracy,
        },
        counts={**landed_by_type, "dead_letters": int(dead + dead_records)},
        rules={"ingestion.batch": rules},
    )


# Rows of one raw table that dbt sees: those of published ingestion batches (write-audit-publish).
_PUBLISHED_RAW = """(SELECT count(*) FROM raw.{t}_events WHERE batch_id IN
    (SELECT batch_id FROM ops.batches WHERE stage = 'ingestion' AND state = 'published'))"""


def candidate_name(qualified: str, schemas: Mapping[str, str]) -> str:
    """A mart's name in the candidate dbt built (``marketing__<v>.mart_user_segments``).

    ``schemas`` is the transform summary's map from published schema to candidate schema; a
    schema it does not name (or an empty map: no candidate) reads the published name.
    """
    schema, _, table = qualified.partition(".")
    return f"{schemas.get(schema, schema)}.{table}"


def transformation(settings: Settings, summary: Mapping[str, Any]) -> StageBatch:
    """The marts dbt just built (the candidate when the summary names its schemas), and the
    funnel's totals beside the published raw rows they were built from."""
    schemas = dict(summary.get("schemas") or {})
    segments_mart, reco_mart, funnel_mart = (
        candidate_name(t, schemas) for t in (SEGMENTS_MART, RECO_MART, FUNNEL)
    )
    with read_warehouse(settings) as con:
        missing = [t for t in (segments_mart, reco_mart, funnel_mart) if not _exists(con, t)]
        if missing:
            raise SearchflowError(
                f"the transformation gate found no {', '.join(missing)}; run `searchflow transform` first"
            )
        segments = con.execute(
            f"SELECT user_id, segment, total_conversions, lifetime_value FROM {segments_mart}"
        ).df()
        reco_schema, _, reco_table = reco_mart.partition(".")
        dest_cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $s"
                " AND table_name = $t AND column_name LIKE 'destination\\_%' ESCAPE '\\'"
                " ORDER BY column_name",
                {"s": reco_schema, "t": reco_table},
            ).fetchall()
        ]
        counted = " + ".join(f"({c} IS NOT NULL)::INT" for c in dest_cols) or "0"
        recos = con.execute(
            f"SELECT user_id, destination_1, score, {counted} AS destinations FROM {reco_mart}"
        ).df()
        funnel = con.execute(
            f"SELECT event_date, searches, click_through_rate, conversion_rate FROM {funnel_mart}"
        ).df()
        raw = {t: _PUBLISHED_RAW.format(t=t) for t in EVENT_TYPES}
        totals = con.execute(
            f"""
            SELECT f.searches AS funnel_searches, {raw["search"]} AS raw_searches,
                   f.clicks AS funnel_clicks, {raw["click"]} AS raw_clicks,
                   f.conversions AS funnel_conversions, {raw["conversion"]} AS raw_conversions,
                   CASE WHEN f.searches > 0 THEN f.clicks / f.searches ELSE 0 END AS click_through_rate,
                   CASE WHEN f.searches > 0 THEN f.conversions / f.searches ELSE 0 END AS conversion_rate
            FROM (SELECT coalesce(sum(searches), 0)::BIGINT AS searches,
                         coalesce(sum(clicks), 0)::BIGINT AS clicks,
                         coalesce(sum(conversions), 0)::BIGINT AS conversions FROM {funnel_mart}) f
            """
        ).df()
    return StageBatch(
        checkpoint="transformation",
        frames={
            "transformation.user_segments": segments,
            "transformation.recommendations": recos,
            "transformation.search_funnel": funnel,
            "transformation.funnel_totals": totals,
        },
        counts={"users": len(segments), "recommendations": len(recos), "funnel_rows": len(funnel)},
    )


def _exists(con: Any, qualified: str) -> bool:
    from searchflow.warehouse import table_exists

    return table_exists(con, qualified)


def _mart_rows(settings: Settings, table: str) -> int:
    with read_warehouse(settings) as con:
        if not _exists(con, table):
            raise SearchflowError(
                f"the sync gate found no {table}; run `searchflow transform` first"
            )
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def sync(settings: Settings, summary: Mapping[str, Any]) -> StageBatch:
    """A sync's destination: the Postgres table through GX's SQL source, or a Redis key sample."""
    name = str(summary.get("sync") or "")
    if name not in SYNC_NAMES:
        raise SearchflowError(
            f"the sync gate needs summary['sync'] in {', '.join(SYNC_NAMES)}, got {name!r}"
        )
    from searchflow import services

    if name == "recommendations":
        mart_rows = _mart_rows(settings, RECO_MART)
        sample = redis_sample(settings, settings.dq_redis_sample)
        return StageBatch(
            checkpoint="sync.recommendations",
            frames={"sync.recommendations": sample},
            parameters={"min_sample": min(1, mart_rows)},
            counts={"mart_rows": mart_rows, "sampled": len(sample)},
        )
    mart_rows = _mart_rows(settings, MART_OF[name])
    if name == "email_triggers":
        # The queue takes only consented users' triggers (docs/governance.md): its floor is the
        # rows the sync read after the consent filter, not the mart's whole count.
        mart_rows = min(mart_rows, int(summary.get("read") or 0))
    checkpoint = POSTGRES_CHECKPOINTS[name]
    return StageBatch(
        checkpoint=checkpoint,
        frames={checkpoint: None},
        parameters={"mart_rows": mart_rows},
        counts={"mart_rows": mart_rows},
        postgres_url=services.postgres_url(settings),
    )


def owned_sample(client: Any, owned: str, size: int) -> list[bytes]:
    """Up to ``size`` keys drawn at random from the sync's list of the keys it wrote.

    The list (:func:`searchflow.contract.reco_owned_list`) holds its state in element 0 and JSON
    arrays of keys after it; a few random arrays are read, enough for the sample.
    """
    import json
    import random

    chunks = max(0, int(client.llen(owned)) - 1)
    keys: list[str] = []
    for index in random.sample(range(1, chunks + 1), chunks):
        keys.extend(json.loads(client.lindex(owned, index) or b"[]"))
        if len(keys) >= size:
            break
    return sorted(k.encode() for k in random.sample(keys, min(size, len(keys))))


def redis_sample(settings: Settings, size: int) -> pd.DataFrame:
    """Up to ``size`` recommendation keys with their TTL and the shape of their JSON, as a frame.

    The sample is drawn from the keys the sync wrote (:func:`owned_sample`), so another
    application's keys under the same prefix are never judged; an owned key that has since
    vanished shows as no TTL and no JSON. TTL and GET go in one pipeline.
    """
    import json

    from searchflow import services

    client = services.redis_client(settings)
    try:
        keys = owned_sample(client, reco_owned_list(settings.reco_prefix), size)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
            pipe.get(key)
        replies = pipe.execute() if keys else []
    finally:
        client.close()
    ttls, bodies = replies[0::2], replies[1::2]
    rows = []
    for key, ttl, body in zip(keys, ttls, bodies, strict=True):
        parsed: Any = None
        try:
            parsed = json.loads(body) if body is not None else None
        except ValueError:
            parsed = None
        ok = (
            isinstance(parsed, dict)
            and isinstance(parsed.get("destinations"), list)
            and isinstance(parsed.get("score"), int | float)
            and isinstance(parsed.get("generated_at"), str)
        )
        rows.append(
            {
                "key": key.decode(),
                "ttl_seconds": int(ttl),
                "json_ok": bool(ok),
                "destinations": len(parsed["destinations"]) if ok else 0,
                "score": float(parsed["score"]) if ok else None,
                "value": body.decode(errors="replace") if body is not None else None,
            }
        )
    columns = ["key", "ttl_seconds", "json_ok", "destinations", "score", "value"]
    return pd.DataFrame(rows, columns=columns).astype(
        {"ttl_seconds": "int64", "json_ok": "bool", "destinations": "int64", "score": "float64"}
    )
