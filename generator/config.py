"""What a generation run is asked to do, and the batch id derived from it.

The batch id is a hash of every argument that shapes the output, so the same arguments give the
same batch id, the same file names and the same bytes; different arguments never collide.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime

from searchflow.contract import GENERATOR_DEFAULTS as DEFAULTS
from searchflow.contract import SINKS
from searchflow.errors import UsageError

__all__ = ["DEFAULT_START", "MAX_EVENTS", "SINKS", "GeneratorConfig"]

DEFAULT_START = DEFAULTS.start
# One batch keeps each stream's text in one Arrow string column, which 32-bit offsets bound.
MAX_EVENTS = 5_000_000


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
