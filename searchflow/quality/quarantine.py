"""Failing rows of row-level expectations, copied to ``quality.quarantine`` in DuckDB with the reason.

GX is run with the SUMMARY result format (the COMPLETE one builds Python lists of every failing
row, which costs more than the validation itself on a bad million-row batch). The rows are found
again here with one vectorised pandas mask per failed expectation, from the expectation's own
kwargs, so they are exactly the rows GX counted; for the set-wise rules of the generation and
ingestion gates, by the rule's own predicate (:meth:`searchflow.quality.checks.RuleSet.rows`). Only
expectations marked ``"quarantine": true`` in their ``meta`` (in ``expectations/suites``) are copied.

The warehouse connection is taken for the one insert transaction and closed at once. If another
process holds the file (a stage running elsewhere), the rows are written to a Parquet file under
``$SEARCHFLOW_HOME/quality/quarantine/`` instead of blocking the gate, and the outcome says where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from searchflow.config import Settings
from searchflow.errors import SearchflowError

TABLE = "quality.quarantine"

DDL = (
    "CREATE SCHEMA IF NOT EXISTS quality",
    f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        stage          VARCHAR   NOT NULL,
        batch_id       VARCHAR   NOT NULL,
        suite          VARCHAR   NOT NULL,  -- the suite / validation definition
        expectation    VARCHAR   NOT NULL,  -- e.g. expect_column_values_to_be_unique(event_id)
        reason         VARCHAR   NOT NULL,  -- what is wrong with the row, one line
        row            JSON      NOT NULL,  -- the row as the gate saw it
        quarantined_at TIMESTAMP NOT NULL   -- UTC
    )
    """,
)


@dataclass(frozen=True)
class Failing:
    """The rows of one failed row-level expectation."""

    suite: str
    expectation: str
    reason: str
    rows: pd.DataFrame


def _bound(series: pd.Series, value: Any) -> Any:
    if value is None:
        return None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamp = pd.Timestamp(value)
        tz = getattr(series.dtype, "tz", None)
        if tz is not None and stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        elif tz is None and stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp
    return value


def failing_mask(
    frame: pd.DataFrame, kind: str, kwargs: Mapping[str, Any]
) -> tuple[pd.Series, str] | None:
    """The rows that break one expectation, and the reason; None for a kind with no row meaning."""
    column = kwargs.get("column")
    if column is None or column not in frame:
        return None
    values = frame[column]
    if kind == "expect_column_values_to_not_be_null":
        return values.isna(), f"{column} is null"
    if kind == "expect_column_values_to_be_unique":
        return values.notna() & values.duplicated(keep=False), f"{column} is not unique"
    if kind == "expect_column_values_to_be_in_set":
        allowed = list(kwargs.get("value_set") or [])
        return values.notna() & ~values.isin(allowed), f"{column} not in {allowed}"
    if kind in ("expect_column_values_to_be_between", "expect_column_max_to_be_between"):
        low = None if kind == "expect_column_max_to_be_between" else kwargs.get("min_value")
        high = kwargs.get("max_value")
        mask = pd.Series(False, index=frame.index)
        if low is not None:
            mask |= values < _bound(values, low)
        if high is not None:
            mask |= values > _bound(values, high)
        return mask.fillna(False).astype(bool), f"{column} outside [{low}, {high}]"
    return None


def write(settings: Settings, stage: str, batch_id: str, failing: list[Failing]) -> dict[str, Any]:
    """Copy the rows; returns where they went and how many per expectation."""
    failing = [f for f in failing if len(f.rows)]
    if not failing:
        return {"rows": 0, "where": None}
    from searchflow import warehouse

    try:
        con = warehouse.connect(settings)
    except SearchflowError:
        return _write_parquet(settings, stage, batch_id, failing)
    try:
        for statement in DDL:
            con.execute(statement)
        con.execute("BEGIN TRANSACTION")
        for item in failing:
            con.register("failing_rows", item.rows)
            con.execute(
                f"INSERT INTO {TABLE} SELECT $stage, $batch, $suite, $expectation, $reason, "
                "to_json(failing_rows), now() AT TIME ZONE 'UTC' FROM failing_rows",
                {
                    "stage": stage,
                    "batch": batch_id,
                    "suite": item.suite,
                    "expectation": item.expectation,
                    "reason": item.reason,
                },
            )
            con.unregister("failing_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return {
        "rows": sum(len(f.rows) for f in failing),
        "where": f"{settings.warehouse_path}:{TABLE}",
    }


def _write_parquet(
    settings: Settings, stage: str, batch_id: str, failing: list[Failing]
) -> dict[str, Any]:
    from searchflow.quality.context import quality_home

    folder = quality_home(settings) / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    path: Path = folder / f"{stage}-{batch_id}.parquet"
    parts = [
        pd.DataFrame(
            {
                "stage": stage,
                "batch_id": batch_id,
                "suite": f.suite,
                "expectation": f.expectation,
                "reason": f.reason,
                "row": f.rows.to_json(orient="records", lines=True, date_format="iso").splitlines(),
            }
        )
        for f in failing
    ]
    pd.concat(parts, ignore_index=True).to_parquet(path)
    return {"rows": sum(len(f.rows) for f in failing), "where": str(path)}
