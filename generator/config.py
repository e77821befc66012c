"""What a generation run is asked to do, and the batch id derived from it.

The batch id is a hash of every argument that shapes the output, so the same arguments give the
same batch id, the same file names and the same bytes; different arguments never collide.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime

from searchflow.contract import GENERATOR_DEFAULTS as DEFAULTS
from searchflow.contract import SINKS
from searchflow.errors import UsageError

__all__ = [
    "DEFAULT_START",
    "LIVE_MAX_EVENTS",
    "MAX_EVENTS",
    "PART_EVENTS",
    "SINKS",
    "GeneratorConfig",
    "PartConfig",
]

DEFAULT_START = DEFAULTS.start
# A bulk batch above PART_EVENTS is simulated and written in parts of at most that many events,
# one part in memory at a time (generator/parts.py): memory is bounded by the part, not the batch.
PART_EVENTS = 250_000
# A sanity bound, not a memory one: the JSONL sink checks the free disk space before writing.
MAX_EVENTS = 2_000_000_000
# A live batch is one part (its trickle keeps the whole emission plan in memory).
LIVE_MAX_EVENTS = 5_000_000
PART_STREAM = 7  # salts the random streams of a part (a one-part batch keeps the unsalted ones)


@dataclass(frozen=True)
class GeneratorConfig:
    """Arguments of one generation run (the command's options, validated).

    ``events`` is the exact number of lines emitted, faults included: the clean simulation makes
    ``events - malformed - duplicates`` well-formed events and the faults fill the rest. Late events
    are clean events moved later in the emission order, so they do not add lines.
    """

    events: int = DEFAULTS.events
    users: int = DEFAULTS.users
    seed: int = DEFAULTS.seed
    start: date = DEFAULTS.start
    days: int = DEFAULTS.days
    click_through_rate: float = DEFAULTS.click_through_rate
    conversion_rate: float = DEFAULTS.conversion_rate
    malformed_rate: float = DEFAULTS.malformed_rate
    duplicate_rate: float = DEFAULTS.duplicate_rate
    late_rate: float = DEFAULTS.late_rate
    anonymous_rate: float = DEFAULTS.anonymous_rate
    power_user_share: float = DEFAULTS.power_user_share
    # Live mode: timestamps are the wall clock from ``live_start`` at ``rate`` events per second.
    live: bool = False
    rate: float = DEFAULTS.rate
    live_start: datetime | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        if self.events < 0:
            raise UsageError(f"--events must be 0 or more, got {self.events}")
        if self.events > MAX_EVENTS:
            raise UsageError(
                f"--events is at most {MAX_EVENTS:,} per batch, got {self.events:,}; "
                "generate several batches (another --seed or --start each)"
            )
        if self.live and self.events > LIVE_MAX_EVENTS:
            raise UsageError(
                f"--live sends at most {LIVE_MAX_EVENTS:,} events per run, got {self.events:,}; "
                "run it again for more, or drop --live for a bulk backfill"
            )
        if self.users < 1:
            raise UsageError(f"--users must be at least 1, got {self.users}")
        if self.days < 1:
            raise UsageError(f"--days must be at least 1, got {self.days}")
        if self.seed < 0:
            raise UsageError(f"--seed must be 0 or more, got {self.seed}")
        if not self.rate > 0:
            raise UsageError(f"--rate must be above 0 events per second, got {self.rate}")
        for name in (
            "click_through_rate",
            "conversion_rate",
            "malformed_rate",
            "duplicate_rate",
            "late_rate",
            "anonymous_rate",
            "power_user_share",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                option = name.replace("_", "-")
                raise UsageError(f"--{option} must be between 0 and 1, got {value}")
        if self.malformed_rate + self.duplicate_rate > 1.0:
            raise UsageError(
                "--malformed-rate plus --duplicate-rate must not exceed 1 "
                f"(got {self.malformed_rate} + {self.duplicate_rate})"
            )

    @property
    def salt(self) -> tuple[int, ...]:
        """Appended to every random stream's key: nothing for a whole batch (see PartConfig)."""
        return ()

    @property
    def part_count(self) -> int:
        """How many parts the batch is simulated and written in (1: all in memory at once)."""
        if self.live or self.events <= PART_EVENTS:
            return 1
        return math.ceil(self.events / PART_EVENTS)

    def part_configs(self) -> list[PartConfig]:
        """The parts of a batch above :data:`PART_EVENTS`: the events, malformed lines and
        duplicates split evenly (the first parts take the remainders), so the parts add up to
        exactly the batch's counts."""
        k = self.part_count

        def share(total: int, i: int) -> int:
            return total // k + (1 if i < total % k else 0)

        return [
            PartConfig(
                **{f.name: getattr(self, f.name) for f in fields(GeneratorConfig)},
                part=i,
                malformed=share(self.n_malformed, i),
                duplicates=share(self.n_duplicates, i),
            )._with_events(share(self.events, i))
            for i in range(k)
        ]

    @property
    def n_malformed(self) -> int:
        return round(self.events * self.malformed_rate)

    @property
    def n_duplicates(self) -> int:
        return round(self.events * self.duplicate_rate)

    @property
    def n_clean(self) -> int:
        return self.events - self.n_malformed - self.n_duplicates

    @property
    def start_datetime(self) -> datetime:
        """Start of the simulated range (bulk) or of the trickle (live), UTC."""
        if self.live:
            return (self.live_start or datetime.now(UTC)).astimezone(UTC)
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    def canonical(self) -> dict[str, object]:
        """The arguments as plain JSON values, in a fixed order: what the batch id hashes."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = asdict(self)[f.name]
            if isinstance(value, date | datetime):
                value = value.isoformat()
            out[f.name] = value
        if not self.live:
            out.pop("rate")
            out.pop("live_start")
        return out

    @property
    def batch_id(self) -> str:
        """``gen-<start>-<hash>``: readable, sortable by start, unique per argument set."""
        digest = hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[
            :10
        ]
        stamp = self.start_datetime.strftime("%Y%m%dT%H%M%S" if self.live else "%Y%m%d")
        return f"gen-{stamp}-{digest}"


@dataclass(frozen=True)
class PartConfig(GeneratorConfig):
    """One part of a batch built in parts: the batch's arguments, its own share of the events and
    faults, and random streams salted with the part number. The user pool (its habits depend on
    the seed and pool size alone) is the batch's, shared by every part."""

    part: int = 0
    malformed: int = 0
    duplicates: int = 0

    def _with_events(self, events: int) -> PartConfig:
        object.__setattr__(self, "events", events)
        return self

    @property
    def salt(self) -> tuple[int, ...]:
        return (PART_STREAM, self.part)

    @property
    def part_count(self) -> int:
        return 1

    @property
    def n_malformed(self) -> int:
        return self.malformed

    @property
    def n_duplicates(self) -> int:
        return self.duplicates
