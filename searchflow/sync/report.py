"""What a sync run reports: the same fields land in ``crm.sync_runs`` and in ``--json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class SyncReport:
    """One run of one sync. ``read = inserted + updated + unchanged + failed``; deletes are apart.

    ``failed`` counts the mart rows the destination could not take (rejects, each with its reason in
    ``crm.sync_rejects``). A dry run carries the counts the real run would have had.
    ``mart_version`` is the published mart version read (None before the first publication);
    ``nothing_new`` says this sync had already delivered it (``synced_by``: that run), so nothing
    was read or written. ``recorded_failures`` are earlier failed runs that could not be written to
    ``crm.sync_runs`` when they failed (Postgres was down) and were recorded by this run.
    """

    sync: str
    run_id: str
    batch_id: str
    destination: str
    started_at: datetime
    dry_run: bool = False
    full_resync: bool = False
    status: str = "running"
    finished_at: datetime | None = None
    mart_version: str | None = None
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    seconds: float = 0.0
    error: str | None = None
    reject_reasons: dict[str, int] = field(default_factory=dict)
    nothing_new: bool = False
    synced_by: str | None = None
    recorded_failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out

    def human(self) -> str:
        if self.nothing_new:
            text = (
                f"{self.sync:<16} -> {self.destination}: nothing new to publish (mart version "
                f"{self.mart_version} already synced by run {self.synced_by})"
            )
        else:
            mode = " (dry run, nothing written)" if self.dry_run else ""
            version = f" (mart version {self.mart_version})" if self.mart_version else ""
            text = (
                f"{self.sync:<16} -> {self.destination}{version}: read {self.read:,}, "
                f"inserted {self.inserted:,}, updated {self.updated:,}, "
                f"unchanged {self.unchanged:,}, deleted {self.deleted:,}, "
                f"failed {self.failed:,} in {self.seconds:.2f}s{mode}"
            )
        if self.reject_reasons:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reject_reasons.items()))
            text += f"\n{'':<16}    rejects: {reasons} (see crm.sync_rejects)"
        for run in self.recorded_failures:
            text += (
                f"\n{'':<16}    recorded an earlier failed run of {run['sync']} "
                f"({run['run_id']}, started {run['started_at']}): {run['error']}"
            )
        return text
