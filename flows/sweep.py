"""The sweeper: a scheduled flow that starts the next stage for every batch the events left waiting.

The chain normally moves on events: a passed gate emits ``searchflow.<stage>.validated`` and a
deployment trigger starts the next stage. An event can be lost (the server was down when it was
emitted, a trigger was off, a run crashed between its gate and its event). The batch ledger knows
better: a batch that passed its gate and has no downstream batch is waiting. The sweeper reads the
ledger (from the warehouse, holding the warehouse slot for a moment; the export
``published/ops/batches.parquet`` when there is no warehouse file), decides with
:func:`plan_sweep` (pure, tested without a server) which deployments to start, and starts each
once: the idempotency key names the deployment and the batch, so a second sweep of the same
waiting batch returns the run the first one made instead of starting another.

What counts as waiting, per downstream stage (each stage lands or builds everything new, so one
run per deployment serves every waiting batch; the newest names the run as its parent):

- ingestion: a published generation batch that no ingestion batch lists as a parent, per sink;
- transformation: a published ingestion batch in no transformation batch's parents (a held build
  counts: it was tried, and releasing it is a person's decision);
- sync: the served mart version (the newest published transformation batch) that a sync has no
  judged ledger row for (a held sync counts, as above).

A downstream row still ``landed`` does not count: its run died between landing and its gate.

A deployment that already has a run scheduled, pending or running is left alone: that run takes the
batch, or the next sweep sees it still waiting. A batch published moments ago is left to its
trigger for a grace period, so the sweeper does not race the event it backs up.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow

from searchflow.config import Settings
from searchflow.contract import FLOWS, SYNCS

# Seconds a freshly published batch is left to its event trigger before the sweeper steps in.
GRACE_SECONDS = 60
# Prefect state types of a run that will still do its work.
# Ledger states of a batch whose gate ran: its run got as far as it will.
JUDGED = frozenset({"published", "held", "discarded"})
ACTIVE_STATE_TYPES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"})

_DEPLOYMENT = {flow.stage: flow.deployment for flow in FLOWS if flow.stage != "sync"}
_SYNC_DEPLOYMENT = {spec.name: spec.flow.replace("_", "-") for spec in SYNCS}


@dataclass(frozen=True)
class Start:
    """One deployment run the sweeper starts: for which waiting batch, with which parameters."""

    deployment: str
    batch_id: str  # the waiting batch, passed as the run's parent_batch_id
    stage: str  # the stage the run performs
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Same deployment and batch, same key: Prefect returns the existing run, never a second."""
        return f"sweep:{self.deployment}:{self.batch_id}"

    @property
    def full_name(self) -> str:
        """``flow/deployment``: each served flow is named like its deployment."""
        return f"{self.deployment}/{self.deployment}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "batch_id": self.batch_id,
            "stage": self.stage,
            "parameters": self.parameters,
            "idempotency_key": self.idempotency_key,
        }


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # the ledger stores naive UTC


def _settled(row: Mapping[str, Any], cutoff: datetime) -> bool:
    published = _as_utc(row.get("published_at")) or _as_utc(row.get("updated_at"))
    return published is not None and published <= cutoff


def _newest(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    ordered = sorted(
        rows,
        key=lambda r: (
            _as_utc(r.get("published_at")) or datetime.min.replace(tzinfo=UTC),
            r["batch_id"],
        ),
    )
    return ordered[-1] if ordered else None


def plan_sweep(
    batches: Iterable[Mapping[str, Any]],
    active: Collection[str],
    *,
    now: datetime,
    grace_seconds: float = GRACE_SECONDS,
) -> list[Start]:
    """Which deployments to start for the waiting batches in ``batches`` (ledger rows).

    ``active`` names the deployments that have a run scheduled, pending or running; they are left
    alone. Only batches published at least ``grace_seconds`` before ``now`` count as waiting.
    """
    rows = list(batches)
    cutoff = now - timedelta(seconds=grace_seconds)
    published = [r for r in rows if r.get("state") == "published"]

    def parents_of(stage: str) -> set[str]:
        # A downstream batch still ``landed`` was never judged: its run died before its gate
        # (killed, or the server went away), so the batches it read are still waiting.
        return {
            p
            for r in rows
            if r.get("stage") == stage and r.get("state") in JUDGED
            for p in (r.get("parents") or [])
        }

    starts: list[Start] = []

    ingested = parents_of("ingestion")
    waiting_by_sink: dict[str, list[Mapping[str, Any]]] = {}
    for row in published:
        waiting = row.get("stage") == "generation" and row["batch_id"] not in ingested
        if waiting and row.get("source") and _settled(row, cutoff):
            waiting_by_sink.setdefault(str(row["source"]), []).append(row)
    for sink in sorted(waiting_by_sink):
        newest = _newest(waiting_by_sink[sink])
        if newest is not None:
            starts.append(
                Start(
                    _DEPLOYMENT["ingestion"],
                    str(newest["batch_id"]),
                    "ingestion",
                    {"source": sink, "parent_batch_id": str(newest["batch_id"])},
                )
            )

    built = parents_of("transformation")
    newest_ingestion = _newest(
        r
        for r in published
        if r.get("stage") == "ingestion" and r["batch_id"] not in built and _settled(r, cutoff)
    )
    if newest_ingestion is not None:
        batch_id = str(newest_ingestion["batch_id"])
        starts.append(
            Start(
                _DEPLOYMENT["transformation"],
                batch_id,
                "transformation",
                {"parent_batch_id": batch_id},
            )
        )

    served = _newest(r for r in published if r.get("stage") == "transformation")
    if served is not None and _settled(served, cutoff):
        version = str(served["batch_id"])
        for name, deployment in _SYNC_DEPLOYMENT.items():
            synced = any(
                r.get("stage") == "sync"
                and r.get("state") in JUDGED
                and r.get("source") == name
                and version in (r.get("parents") or [])
                for r in rows
            )
            if not synced:
                starts.append(Start(deployment, version, "sync", {"parent_batch_id": version}))

    # A deployment with a run of its own still to come needs no second one; a batch with only
    # held or discarded parents is not published and never reached this far.
    return [start for start in starts if start.deployment not in active]


def read_ledger(home: Path) -> list[dict[str, Any]]:
    """The ledger rows from the published export; none before the first export."""
    import pyarrow.parquet as pq

    from searchflow.published import ops_path

    path = ops_path(home, "batches")
    if not path.exists():
        return []
    return pq.read_table(path).to_pylist()


def read_warehouse_ledger(warehouse: Path | Settings) -> list[dict[str, Any]] | None:
    """The ledger from the warehouse itself (the caller holds the warehouse slot); None without a
    warehouse file. Preferred to the export: a stage that died between its ledger change and the
    export leaves the Parquet file behind the ledger, which is exactly when a sweep is needed.

    ``warehouse``: the DuckDB file, or the settings (a warehouse in PostgreSQL is read through
    :func:`searchflow.warehouse.connect`).
    """
    import duckdb

    from searchflow import ledger
    from searchflow import warehouse as wh

    if isinstance(warehouse, Settings):
        if not warehouse.warehouse_exists:
            return None
        con = wh.connect(warehouse, read_only=True)
    elif not warehouse.exists():
        return None
    else:
        con = duckdb.connect(str(warehouse), read_only=True)
    try:
        if not wh.table_exists(con, ledger.BATCHES):  # no ops schema yet: nothing ever ran
            return []
        return ledger.list_batches(con)
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def _active_deployments(client: Any, names: Iterable[str]) -> set[str]:
    """The deployments among ``names`` with a run scheduled, pending or running."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    ids: dict[str, str] = {}
    for name in names:
        try:
            ids[str(client.read_deployment_by_name(f"{name}/{name}").id)] = name
        except Exception:  # noqa: BLE001 - a deployment that is not there cannot be started either
            continue
    if not ids:
        return set()
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(ids))),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType(t) for t in ACTIVE_STATE_TYPES])
            )
        ),
    )
    return {ids[str(run.deployment_id)] for run in runs if str(run.deployment_id) in ids}


@flow(name="sweep", log_prints=True)
def sweep(grace_seconds: int = GRACE_SECONDS) -> dict[str, Any]:
    """Start the next stage, once, for every batch that passed its gate and has no downstream run."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from flows.common import warehouse_slot
    from searchflow.config import get_settings

    settings = get_settings()
    with warehouse_slot():
        rows = read_warehouse_ledger(settings)
    if rows is None:
        rows = read_ledger(settings.home_path)
    with get_client(sync_client=True) as client:
        targets = [*_DEPLOYMENT.values(), *_SYNC_DEPLOYMENT.values()]
        active = _active_deployments(client, targets)
    plan = plan_sweep(rows, active, now=datetime.now(UTC), grace_seconds=grace_seconds)
    started = []
    for start in plan:
        run = run_deployment(
            start.full_name,
            parameters=start.parameters,
            timeout=0,
            idempotency_key=start.idempotency_key,
            as_subflow=False,
        )
        started.append({**start.to_dict(), "flow_run_id": str(run.id)})
        print(f"{start.stage} for waiting batch {start.batch_id}: {start.full_name} run {run.id}")
    if not started:
        print(f"nothing waiting: {len(rows)} ledger rows, every published batch has its next stage")
    return {"ledger_rows": len(rows), "active": sorted(active), "started": started}
