"""The API's response and request models: the documented shape of every JSON answer.

Each endpoint declares one of these as its ``response_model``, so ``/openapi.json`` and ``/docs``
describe exactly what a client receives, and FastAPI drops any field a query adds by accident.
List endpoints answer a ``data`` + ``count`` envelope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from searchflow.contract import GENERATOR_DEFAULTS


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# The ledger and the marts keep naive UTC timestamps; answers carry the offset (RFC 3339).
Timestamp = Annotated[datetime, AfterValidator(_utc)]


class Check(BaseModel):
    """One dependency's readiness."""

    ready: bool
    latency_ms: float | None = Field(None, description="How long the check took.")
    detail: str = Field("", description="What was checked, or why it is not ready.")


class Health(BaseModel):
    """Liveness (the process answers) and readiness of each dependency."""

    status: Literal["ok", "unavailable"]
    not_ready: list[str] = Field(default_factory=list, description="Checks that failed.")
    checks: dict[str, Check]


class EventTotals(BaseModel):
    """Events landed by ingestion batches still in the warehouse, by the batch's state."""

    landed: int = Field(description="Every landed event (published, held or awaiting its gate).")
    published: int
    held: int
    pending: int = Field(description="Landed in a batch whose gate has not run yet.")


class LandedRate(BaseModel):
    last_hour: int
    last_day: int
    per_minute_last_hour: float
    per_minute_last_day: float


class GateStats(BaseModel):
    outcomes: dict[str, int] = Field(description="passed, failed, errored, forced -> batches.")
    pass_rate: float | None = Field(description="passed / gated batches; null before any gate.")


class SyncStats(BaseModel):
    destination: str
    runs: int
    failed_runs: int
    error_rate: float | None
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    last_mart_version: str | None = None
    last_finished_at: Timestamp | None = None


class Freshness(BaseModel):
    """How long ago the latest published ingestion batch of a source landed (wall clock)."""

    source: str
    batch_id: str
    landed_at: Timestamp
    seconds: float
    status: Literal["fresh", "warn", "error"] = Field(
        description="warn after 24 h, error after 72 h (the dbt sources' thresholds); never blocks."
    )


class Publication(BaseModel):
    version: str
    published_at: Timestamp | None = None
    forced: bool = False


class Stats(BaseModel):
    """The pipeline's figures, from the ledger export and the sync history."""

    generated_at: Timestamp
    events: EventTotals
    landed_rate: LandedRate
    batches_by_state: dict[str, dict[str, int]] = Field(description="stage -> state -> batches.")
    gates: dict[str, GateStats] = Field(description="Per stage.")
    dead_letters_by_reason: dict[str, int]
    syncs: dict[str, SyncStats] = Field(description="Per sync, from crm.sync_runs.")
    sync_error_rate: float | None
    freshness: list[Freshness]
    published: Publication | None
    warnings: list[str] = Field(
        default_factory=list, description="Parts left out because a source did not answer."
    )


class Batch(BaseModel):
    """One row of the batch ledger (ops.batches)."""

    batch_id: str
    stage: str
    parents: list[str]
    state: str
    source: str | None = None
    counts: dict[str, Any] | None = None
    gate_outcome: str | None = None
    gate_reasons: list[str] | None = None
    forced: bool = False
    flow_run_id: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    published_at: Timestamp | None = None
    discarded_at: Timestamp | None = None


class BatchList(BaseModel):
    data: list[Batch]
    count: int


class BatchStory(BaseModel):
    """A batch and its lineage: ancestors and descendants in stage order."""

    batch: Batch
    lineage: list[Batch]


class Recommendations(BaseModel):
    """The user's recommendations as they are in Redis now."""

    key: str
    destinations: list[str]
    score: float | None = None
    generated_at: str | None = None
    ttl_seconds: int | None = Field(description="Time left before Redis expires the key.")


class User(BaseModel):
    user_id: str
    mart_version: str | None
    segment: str | None = None
    total_searches: int | None = None
    total_clicks: int | None = None
    total_conversions: int | None = None
    lifetime_value: float | None = None
    first_seen_at: Timestamp | None = None
    last_seen_at: Timestamp | None = None
    as_of: Timestamp | None = None
    recommendations: Recommendations | None = None


class DeadLetter(BaseModel):
    dead_letter_id: str
    reason: str
    detail: str | None = None
    event_type: str | None = None
    source: str
    source_ref: str | None = None
    batch_id: str
    ingested_at: Timestamp
    excerpt: str = Field(description="The start of the raw line, personal data masked.")
    raw_chars: int
    raw_text: str | None = Field(
        None, description="The raw line as read (up to the export's cap); only with the token."
    )


class DeadLetterList(BaseModel):
    data: list[DeadLetter]
    count: int


class RunRequest(BaseModel):
    """A generated batch to start the served chain with."""

    events: int = Field(GENERATOR_DEFAULTS.events, ge=1, le=100_000_000)
    seed: int = Field(GENERATOR_DEFAULTS.seed, ge=0, le=2**31 - 1)


class RunStarted(BaseModel):
    flow_run_id: str
    deployment: str
    ui_url: str
    idempotency_key: str
    parameters: dict[str, int]


class Problem(BaseModel):
    """An error answer: ``detail`` says what went wrong and what to do."""

    detail: str
