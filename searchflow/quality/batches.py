"""What each gate validates: the batch a stage just produced, as dataframes (or a Postgres table).

GX's SQL data source does not work on DuckDB (every metric comes back empty), so DuckDB data is
read once, briefly, into pandas and validated as dataframe batches. The derived columns a suite
needs (``has_search``, ``destinations``...) and the batch-wide figures (shares, rates, totals, in
one-row frames) are computed here set-wise, in DuckDB or vectorised pandas, so the suites stay
small and GX never loops over rows in Python.

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
from searchflow.errors import SearchflowError

EVENT_TYPES = ("search", "click", "conversion")
SYNCS = {"user_segments": "sync.user_segments", "email_triggers": "sync.email_queue"}
SYNC_NAMES = ("user_segments", "email_triggers", "recommendations")
SEGMENTS_MART = "marketing.mart_user_segments"
RECO_MART = "marketing.mart_recommendations"
TRIGGERS_MART = "marketing.mart_email_triggers"
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


def _generated_frames(data: Any) -> dict[str, pd.DataFrame]:
    """The generator's well-formed events per type, from a GeneratedBatch or a dict of frames."""
    if data is None:
        raise SearchflowError("the generation gate needs the generated batch; pass data= to gate()")
    frames: dict[str, pd.DataFrame] = {}
    for event_type in EVENT_TYPES:
        if hasattr(data, "to_pandas"):
            frames[event_type] = data.to_pandas(event_type)
        else:
            frame = data.get(event_type, data.get(f"{event_type}_events"))
            if frame is None:
                raise SearchflowError(f"the generated batch has no {event_type} events frame")
            frames[event_type] = frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()
    return frames


def _isin(values: pd.Series, allowed: pd.Series) -> Any:
    """``values.isin(allowed)`` through Arrow's hash kernel.

    pandas' own ``isin`` on Arrow-backed strings builds a Python scalar per allowed value, which
    costs seconds at a million ids.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pc.is_in(
        pa.array(values, from_pandas=True), value_set=pa.array(allowed, from_pandas=True)
    )
    return mask.to_numpy(zero_copy_only=False)


def generation(settings: Settings, summary: Mapping[str, Any], data: Any) -> StageBatch:
    """The generated batch: each type's events, their links, and the batch's rates."""
    frames = _generated_frames(data)
    search, click, conversion = (frames[t] for t in EVENT_TYPES)
    if "search_event_id" in click and "event_id" in search:
        click = click.assign(has_search=_isin(click["search_event_id"], search["event_id"]))
    if "click_event_id" in conversion and "event_id" in click:
        conversion = conversion.assign(
            has_click=_isin(conversion["click_event_id"], click["event_id"])
        )
    n_search, n_click, n_conv = len(search), len(click), len(conversion)
    rates = pd.DataFrame(
        {
            "searches": [n_search],
            "clicks": [n_click],
            "conversions": [n_conv],
            "click_through_rate": [n_click / n_search if n_search else 0.0],
            "conversion_rate": [n_conv / n_click if n_click else 0.0],
        }
    )
    config = getattr(data, "config", None)
    ctr = float(getattr(config, "click_through_rate", summary.get("click_through_rate", 0.30)))
    cvr = float(getattr(config, "conversion_rate", summary.get("conversion_rate", 0.10)))
    ctr_min, ctr_max = _rate_band(ctr, n_search, settings.dq_rate_tolerance)
    cvr_min, cvr_max = _rate_band(cvr, n_click, settings.dq_rate_tolerance)
    return StageBatch(
        checkpoint="generation",
        frames={
            "generation.search_events": search,
            "generation.click_events": click,
            "generation.conversion_events": conversion,
            "generation.batch": rates,
        },
        parameters={
            "link_mostly": 1.0 - settings.dq_max_orphan_share,
            "ctr_min": ctr_min,
            "ctr_max": ctr_max,
            "cvr_min": cvr_min,
            "cvr_max": cvr_max,
        },
        counts={"search": n_search, "click": n_click, "conversion": n_conv},
    )


_INGESTED = {
    "search": """
        SELECT event_id, event_time, epoch(event_time) - epoch($now) AS seconds_ahead,
               payload->>'session_id' AS session_id
        FROM raw.search_events WHERE batch_id = $batch""",
    # A parent counts when it is anywhere in raw: it may have landed in an earlier batch.
    "click": """
        SELECT c.event_id, c.event_time, epoch(c.event_time) - epoch($now) AS seconds_ahead,
               c.payload->>'session_id' AS session_id,
               c.payload->>'search_event_id' AS search_event_id,
               s.event_id IS NOT NULL AS has_search
        FROM raw.click_events c
        LEFT JOIN raw.search_events s ON s.event_id = (c.payload->>'search_event_id')
        WHERE c.batch_id = $batch""",
    "conversion": """
        SELECT v.event_id, v.event_time, epoch(v.event_time) - epoch($now) AS seconds_ahead,
               v.payload->>'session_id' AS session_id,
               v.payload->>'click_event_id' AS click_event_id,
               c.event_id IS NOT NULL AS has_click
        FROM raw.conversion_events v
        LEFT JOIN raw.click_events c ON c.event_id = (v.payload->>'click_event_id')
        WHERE v.batch_id = $batch""",
}

_LANDED_BEFORE = """
    SELECT count(*) FROM raw.{t}_events o
    WHERE o.batch_id <> $batch
      AND o.event_id IN (SELECT event_id FROM raw.{t}_events WHERE batch_id = $batch)"""


def ingestion(settings: Settings, summary: Mapping[str, Any]) -> StageBatch:
    """The rows the ingestion batch landed, its dead letters, and ids seen in earlier batches."""
    batch_id = str(summary.get("batch_id") or "")
    if not batch_id:
        raise SearchflowError("the ingestion gate needs the batch_id of the ingestion summary")
    params = {"batch": batch_id}
    now = datetime.now(UTC).replace(tzinfo=None)  # raw event times are naive UTC
    with read_warehouse(settings) as con:
        frames = {t: con.execute(sql, {**params, "now": now}).df() for t, sql in _INGESTED.items()}
        dead = con.execute(
            "SELECT count(*) FROM raw.dead_letter_events WHERE batch_id = $batch", params
        ).fetchone()[0]
        before = sum(
            con.execute(_LANDED_BEFORE.format(t=t), params).fetchone()[0] for t in EVENT_TYPES
        )
    landed = sum(len(f) for f in frames.values())
    metrics = pd.DataFrame(
        {
            "landed": [landed],
            "dead_letters": [int(dead)],
            "dead_letter_share": [dead / (landed + dead) if landed + dead else 0.0],
            "ids_landed_before": [int(before)],
        }
    )
    return StageBatch(
        checkpoint="ingestion",
        frames={
            "ingestion.search_events": frames["search"],
            "ingestion.click_events": frames["click"],
            "ingestion.conversion_events": frames["conversion"],
            "ingestion.batch": metrics,
        },
        parameters={
            "link_mostly": 1.0 - settings.dq_max_orphan_share,
            "max_dead_letter_share": settings.dq_max_dead_letter_share,
            "max_seconds_ahead": settings.dq_future_seconds,
        },
        counts={**{t: len(f) for t, f in frames.items()}, "dead_letters": int(dead)},
    )


def transformation(settings: Settings, summary: Mapping[str, Any]) -> StageBatch:
    """The marts dbt just built, and the funnel's totals beside the raw layer's."""
    with read_warehouse(settings) as con:
        missing = [t for t in (SEGMENTS_MART, RECO_MART, FUNNEL) if not _exists(con, t)]
        if missing:
            raise SearchflowError(
                f"the transformation gate found no {', '.join(missing)}; run `searchflow transform` first"
            )
        segments = con.execute(
            f"SELECT user_id, segment, total_conversions, lifetime_value FROM {SEGMENTS_MART}"
        ).df()
        dest_cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marketing'"
                " AND table_name = 'mart_recommendations' AND column_name LIKE 'destination\\_%' ESCAPE '\\'"
                " ORDER BY column_name"
            ).fetchall()
        ]
        counted = " + ".join(f"({c} IS NOT NULL)::INT" for c in dest_cols) or "0"
        recos = con.execute(
            f"SELECT user_id, destination_1, score, {counted} AS destinations FROM {RECO_MART}"
        ).df()
        funnel = con.execute(
            f"SELECT event_date, searches, click_through_rate, conversion_rate FROM {FUNNEL}"
        ).df()
        totals = con.execute(
            f"""
            SELECT f.searches AS funnel_searches, (SELECT count(*) FROM raw.search_events) AS raw_searches,
                   f.clicks AS funnel_clicks, (SELECT count(*) FROM raw.click_events) AS raw_clicks,
                   f.conversions AS funnel_conversions,
                   (SELECT count(*) FROM raw.conversion_events) AS raw_conversions,
                   CASE WHEN f.searches > 0 THEN f.clicks / f.searches ELSE 0 END AS click_through_rate,
                   CASE WHEN f.searches > 0 THEN f.conversions / f.searches ELSE 0 END AS conversion_rate
            FROM (SELECT coalesce(sum(searches), 0)::BIGINT AS searches,
                         coalesce(sum(clicks), 0)::BIGINT AS clicks,
                         coalesce(sum(conversions), 0)::BIGINT AS conversions FROM {FUNNEL}) f
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
    mart = SEGMENTS_MART if name == "user_segments" else TRIGGERS_MART
    mart_rows = _mart_rows(settings, mart)
    return StageBatch(
        checkpoint=SYNCS[name],
        frames={SYNCS[name]: None},
        parameters={"mart_rows": mart_rows},
        counts={"mart_rows": mart_rows},
        postgres_url=services.postgres_url(settings),
    )


def redis_sample(settings: Settings, size: int) -> pd.DataFrame:
    """Up to ``size`` ``reco:*`` keys with their TTL and the shape of their JSON, as a frame.

    SCAN walks the keyspace from a random-ish cursor order; TTL and GET go in one pipeline.
    """
    import json

    from searchflow import services

    client = services.redis_client(settings)
    try:
        keys: list[bytes] = []
        for key in client.scan_iter(match="reco:*", count=max(size, 100)):
            keys.append(key)
            if len(keys) >= size:
                break
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
