"""Names the stages share: one definition, everything else derives from it.

The order of the stages, the flows and deployments that run them, the events that chain them, the
sources and sinks and the names on the wire between the generator and ingestion, the syncs and the
marts they read. A name changed here changes the command line's choices, the follower's chain, the
flows' signatures and the test of ``prefect.yaml`` together.

The event shapes themselves (fields, kinds, malformed classes) are in :mod:`searchflow.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# The stages in chain order; each is gated, and a gate's events are ``searchflow.<stage>.<outcome>``.
STAGES: tuple[str, ...] = ("generation", "ingestion", "transformation", "sync")
EVENT_PREFIX = "searchflow"
OUTCOMES: tuple[str, ...] = ("validated", "failed")


def event_name(stage: str, outcome: str) -> str:
    """``searchflow.<stage>.<outcome>``, outcome being ``validated`` or ``failed``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    return f"{EVENT_PREFIX}.{stage}.{outcome}"


# The Prefect global concurrency limit that guards the one-writer DuckDB file.
WAREHOUSE_LIMIT = "searchflow-warehouse"
# The lease of a held slot, renewed while its holder lives: a killed holder's slot frees when it
# lapses. The Prefect server accepts no shorter lease.
WAREHOUSE_LEASE_SECONDS = 60

# Where the generator writes events (its sinks) and where ingestion reads (its sources): the sinks,
# plus ``app``, the application's own tables (users, bookings) read through SEARCHFLOW_SOURCE_URL.
SINKS: tuple[str, ...] = ("jsonl", "redis", "postgres")
APP_SOURCE = "app"
SOURCES: tuple[str, ...] = (*SINKS, APP_SOURCE)

# On the wire between the generator and ingestion.
STREAM_PREFIX = "events:"  # Redis Streams events:search, events:click, events:conversion
STREAM_FIELD = "data"  # the stream entry's field holding the JSON text
STREAM_BATCH_FIELD = "batch"  # the stream entry's field holding the generation batch id
APP_EVENTS_TABLE = "app.events"  # the "direct DB" source in PostgreSQL
# A generation batch id starts with this; a JSONL file named after one holds that batch.
GENERATION_BATCH_PREFIX = "gen-"
APP_EVENTS_BATCH_COLUMN = "batch_id"  # its nullable column holding the generation batch id
REDIS_READ_BATCH = 50_000  # stream entries per landing transaction
POSTGRES_READ_BATCH = 200_000  # app.events rows per landing transaction


# The application's own records beside its events (see generator/records.py): the Postgres sink
# keeps their latest versions as tables, the JSONL and Redis sinks carry their change records in a
# folder / stream per type; ingestion lands every version it sees as raw.app_<type>.
RECORD_TYPES: tuple[str, ...] = ("users", "bookings")
APP_TABLES: dict[str, str] = {"users": "app.users", "bookings": "app.bookings"}
RECORD_KEYS: dict[str, str] = {"users": "user_id", "bookings": "booking_id"}
RECORD_STREAM_PREFIX = "app:"  # Redis Streams app:users, app:bookings
APP_READ_BATCH = 200_000  # source rows per landing transaction of ``ingest --source app``


def record_stream_name(record_type: str) -> str:
    """The Redis stream of one record type's change records."""
    return f"{RECORD_STREAM_PREFIX}{record_type}"


def stream_name(event_type: str) -> str:
    """The Redis stream of one event type."""
    return f"{STREAM_PREFIX}{event_type}"


@dataclass(frozen=True)
class SyncSpec:
    """One reverse-ETL sync: the mart it reads and where it writes."""

    name: str
    mart: str
    destination: str
    flow: str  # the flow function, and (dashed) its deployment


SYNCS: tuple[SyncSpec, ...] = (
    SyncSpec(
        "user_segments",
        "marketing.mart_user_segments",
        "postgres crm.user_segments",
        "sync_user_segments",
    ),
    SyncSpec(
        "email_triggers",
        "marketing.mart_email_triggers",
        "postgres crm.email_queue",
        "sync_email_triggers",
    ),
    SyncSpec(
        "recommendations",
        "marketing.mart_recommendations",
        "redis reco:{user_id}",
        "sync_recommendations",
    ),
)
SYNC_NAMES: tuple[str, ...] = tuple(spec.name for spec in SYNCS)
RECO_KEY_PREFIX = "reco:"  # the default; SEARCHFLOW_RECO_PREFIX overrides it
RECO_OWNED_PREFIX = "searchflow:owned:"  # + the key prefix: the list of keys the sync wrote


def reco_owned_list(prefix: str = RECO_KEY_PREFIX) -> str:
    """The Redis list of the recommendation keys SearchFlow wrote under ``prefix``: element 0 is
    its state, every other element a JSON array of keys. The sync deletes only those keys and its
    gate samples only those (other applications' keys under the same prefix are not ours)."""
    return f"{RECO_OWNED_PREFIX}{prefix}"


# The published marts, by schema (what dashboards, the API and the syncs read).
MARTS: tuple[str, ...] = (
    "analytics.fct_search_funnel",
    "analytics.dim_users",
    "marketing.mart_user_segments",
    "marketing.mart_recommendations",
    "marketing.mart_email_triggers",
    "marketing.mart_campaign_attribution",
    "marketing.mart_campaign_performance",
    "marketing.mart_segment_transitions",
    "marketing.mart_segment_history",
    "ml.user_features",
)


@dataclass(frozen=True)
class StageFlow:
    """A served stage: its flow function's module and name, its deployment, what triggers it."""

    stage: str
    entrypoint: str  # path:function, relative to the project folder
    deployment: str
    trigger: str | None  # the event that starts it; None for the head of the chain


def _sync_flows() -> tuple[StageFlow, ...]:
    return tuple(
        StageFlow(
            "sync",
            f"flows/sync.py:{spec.flow}",
            spec.flow.replace("_", "-"),
            event_name("transformation", "validated"),
        )
        for spec in SYNCS
    )


FLOWS: tuple[StageFlow, ...] = (
    StageFlow("generation", "flows/generate.py:generate_events", "generate-events", None),
    StageFlow(
        "ingestion",
        "flows/ingest.py:ingest_events",
        "ingest-events",
        event_name("generation", "validated"),
    ),
    StageFlow(
        "transformation",
        "flows/transform.py:transform",
        "transform",
        event_name("ingestion", "validated"),
    ),
    *_sync_flows(),
)


@dataclass(frozen=True)
class GeneratorDefaults:
    """What ``searchflow generate``, the ``generate-events`` flow and the generator's config
    default to when an option is not given."""

    events: int = 10_000
    users: int = 10_000
    seed: int = 42
    start: date = date(2025, 1, 1)
    days: int = 7
    click_through_rate: float = 0.30
    conversion_rate: float = 0.10
    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    anonymous_rate: float = 0.20
    power_user_share: float = 0.08
    rate: float = 10.0


GENERATOR_DEFAULTS = GeneratorDefaults()
