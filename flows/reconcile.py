"""The scheduled reconcile: ``searchflow reconcile`` as a deployment whose drift raises alerts.

A sync converges its destination to the published mart, but nothing watches the destination after
it: a person editing ``crm.user_segments`` by hand, a Redis eviction, another application writing
under the reco prefix. This flow runs the same comparison as ``searchflow reconcile``
(:func:`searchflow.sync.run_reconcile`, which writes nothing) for every sync, decides with
:func:`drift_of` (pure) what counts as drift, and, for each destination that drifted:

- emits ``searchflow.reconcile.drift`` about the resource ``searchflow.reconcile.<sync>``, whose
  payload names the sync, the destination, the mart version and the counts (the alert automation
  of :mod:`deployments.alerts` posts one message per event, so one alert per drifted destination);
- and ends the run ``Failed`` under the state name ``Drifted``: red in the UI, while the
  "flow run failed" alert (which listens for ``prefect.flow-run.Failed``) stays quiet, so a drift
  alerts once. Any other failure (Postgres down, Redis down) fails the run as usual and that
  alert fires; a mart not built yet (before the first transform) is reported and skipped.

What is not drift: rows the email queue keeps after the mart stopped showing their trigger (the
queue is insert-only), and ``crm.user_segments`` rows of users who left the mart when
``SEARCHFLOW_SYNC_KEEP_REMOVED`` is set. Payloads carry counts, and sample keys only where the key
is not a user id (trigger ids): events live in the Prefect server, which ``searchflow forget``
does not rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect import flow

from searchflow.contract import EVENT_PREFIX, SYNC_NAMES
from searchflow.errors import SearchflowError

DRIFT_EVENT = f"{EVENT_PREFIX}.reconcile.drift"
DRIFT_RESOURCE_PREFIX = f"{EVENT_PREFIX}.reconcile"
DRIFT_STATE = "Drifted"
# Syncs whose destination keys are not user ids: their sample keys may travel in events.
KEYS_NOT_USER_IDS = frozenset({"email_triggers"})
SAMPLE_KEYS = 10


class ReconcileDrift(SearchflowError):
    """A destination does not match its mart; ``summary`` is the flow's whole report."""

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.summary = dict(summary)


@dataclass(frozen=True)
class Drift:
    """One destination that does not match its mart."""

    sync: str
    destination: str
    mart_version: str
    missing: int
    extra: int
    different: int
    sample: tuple[str, ...] = ()

    def line(self) -> str:
        """One line naming the destination and what differs (no user id)."""
        counts = ", ".join(
            f"{n:,} {kind}"
            for kind, n in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("different", self.different),
            )
            if n
        )
        return f"{self.destination} ({self.sync}) drifted from mart version {self.mart_version}: {counts}"

    def event(self) -> dict[str, Any]:
        """The keyword arguments of ``emit_event`` for this drift."""
        return {
            "event": DRIFT_EVENT,
            "resource": {
                "prefect.resource.id": f"{DRIFT_RESOURCE_PREFIX}.{self.sync}",
                "prefect.resource.name": f"{self.sync} destination {self.destination}",
                "searchflow.sync": self.sync,
            },
            "payload": {
                "sync": self.sync,
                "destination": self.destination,
                "mart_version": self.mart_version,
                "missing": self.missing,
                "extra": self.extra,
                "different": self.different,
                "sample": ", ".join(self.sample),
                "summary": self.line(),
            },
        }


def extra_expected(name: str, keep_removed: bool) -> bool:
    """Whether rows in the destination that the mart lacks are the sync's intent, not drift."""
    return name == "email_triggers" or (name == "user_segments" and keep_removed)


def pending(result: Mapping[str, Any]) -> bool:
    """Whether the published mart version has not been delivered by its sync yet.

    Between a publication and its syncs the destination differs from the new mart by design; the
    chain (or the sweeper) is on its way, and a failed sync alerts on its own. Comparing then
    would raise a drift alert for every chain that the hourly schedule happens to overlap.
    """
    return bool(result.get("mart_version")) and "synced_by" in result and not result["synced_by"]


def drift_of(result: Mapping[str, Any], *, keep_removed: bool = False) -> Drift | None:
    """The drift in one ``run_reconcile`` result, or None when the destination matches (or its
    mart version is still waiting for its sync, see :func:`pending`)."""
    if pending(result):
        return None
    name = str(result["sync"])
    extra = 0 if extra_expected(name, keep_removed) else int(result["extra"])
    missing, different = int(result["missing"]), int(result["different"])
    if missing == extra == different == 0:
        return None
    sample: tuple[str, ...] = ()
    if name in KEYS_NOT_USER_IDS:
        kinds = ("missing", "different") + (() if extra == 0 else ("extra",))
        keys = [str(k) for kind in kinds for k in result.get(f"{kind}_sample") or []]
        sample = tuple(keys[:SAMPLE_KEYS])
    return Drift(
        sync=name,
        destination=str(result["destination"]),
        mart_version=str(result.get("mart_version") or "none"),
        missing=missing,
        extra=extra,
        different=different,
        sample=sample,
    )


def drifts(results: Iterable[Mapping[str, Any]], *, keep_removed: bool = False) -> list[Drift]:
    """Every destination that drifted, in the order of ``results``."""
    found = (drift_of(r, keep_removed=keep_removed) for r in results)
    return [d for d in found if d is not None]


def _built(settings: Any, names: list[str]) -> list[str]:
    """The syncs among ``names`` whose mart exists (the caller holds the warehouse slot)."""
    from searchflow import warehouse
    from searchflow.sync.registry import SPECS

    with warehouse.session(settings, read_only=True) as con:
        return [name for name in names if warehouse.table_exists(con, SPECS[name].mart)]


def _reconcile_all(names: list[str]) -> dict[str, dict[str, Any]]:
    """``run_reconcile`` for each sync, the mart read under the warehouse slot."""
    from flows.common import warehouse_slot
    from flows.sync import postgres_block
    from searchflow.config import get_settings
    from searchflow.sync import run_reconcile

    settings = get_settings()
    with warehouse_slot():
        names = _built(settings, names)
    if not names:
        return {}
    engine = postgres_block(settings).get_engine()
    try:
        results = {}
        for name in names:
            # The comparison reads the mart from the warehouse file: one reader at a time with
            # the stages, as the sync flows do. Nothing is written anywhere.
            with warehouse_slot():
                results[name] = run_reconcile(settings, name, pg_connect=engine.raw_connection)
        return results
    finally:
        engine.dispose()


@flow(name="reconcile", log_prints=True)
def reconcile(syncs: list[str] | None = None) -> Any:
    """Compare every mart with its destination; drift ends the run Failed (``Drifted``) after one
    ``searchflow.reconcile.drift`` event per drifted destination."""
    from prefect.events import emit_event
    from prefect.states import Failed

    from searchflow.config import get_settings
    from searchflow.errors import UsageError

    settings = get_settings()
    names = list(syncs or SYNC_NAMES)
    unknown = sorted(set(names) - set(SYNC_NAMES))
    if unknown:
        raise UsageError(f"unknown sync {', '.join(unknown)}; choose among {', '.join(SYNC_NAMES)}")
    if not settings.warehouse_exists:
        print(f"nothing to reconcile: no warehouse at {settings.warehouse_path} yet")
        return {"in_sync": True, "syncs": {}, "drift": [], "not_built": names}
    results = _reconcile_all(names)
    not_built = [name for name in names if name not in results]
    if not_built:
        # Before the first build there is nothing to compare: not drift, and not a failed run.
        print(f"not built yet, nothing to compare: {', '.join(not_built)}")
    waiting = [name for name, result in results.items() if pending(result)]
    if waiting:
        print(f"published but not synced yet, not compared: {', '.join(waiting)}")
    found = drifts(results.values(), keep_removed=settings.sync_keep_removed)
    summary = {
        "not_built": not_built,
        "pending": waiting,
        "in_sync": not found,
        "syncs": {
            name: {k: v for k, v in r.items() if not k.endswith("_sample")}
            for name, r in results.items()
        },
        "drift": [d.line() for d in found],
    }
    for name, result in results.items():
        if name not in waiting and not any(d.sync == name for d in found):
            version = result["mart_version"] or "none"
            print(f"{result['destination']} ({name}) matches mart version {version}")
    if not found:
        return summary
    for drift in found:
        print(drift.line())
        emit_event(**drift.event())
    message = (
        "; ".join(d.line() for d in found)
        + "; run `searchflow reconcile` for the keys and `searchflow sync` to repair"
    )
    return Failed(name=DRIFT_STATE, message=message, data=ReconcileDrift(message, summary))
