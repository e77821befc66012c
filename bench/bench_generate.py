"""Generation: our vectorised generator against the seed documents' per-event dataclass generator.

The seed side is the seed's ``models.py`` + ``generator.py`` + ``FilePublisher`` as written (one
dataclass per event, ``uuid4()`` and ``random`` per field, ``json.dumps`` per event, the file opened
in append mode for every event); its ``_generate_click`` / ``_generate_conversion`` ("similar
methods" in the seed) are written in the same style. Both sides write JSONL files of the same
number of events to a temporary folder.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import uuid4

from bench import Row
from searchflow.contract import stream_name
from searchflow.events import EVENT_TYPES

EVENTS = 1_000_000
GATED_EVENTS = 2_000_000  # the gated stage's row: a batch in parts
REPEAT = 3  # runs of ours per row (median); the seed's runs are long and steadier


# --- the seed documents' generator, faithfully -------------------------------------------------


@dataclass
class SearchEvent:
    query: str
    session_id: str
    event_id: str = field(default_factory=lambda: str(uuid4()))
    event_type: str = "search"
    timestamp: datetime = field(default_factory=datetime.utcnow)
    user_id: str | None = None
    results_count: int = 0
    page: int = 1
    platform: str = "web"
    device_type: str = "desktop"
    geo_country: str = "CA"
    geo_city: str = "Toronto"
    utm_source: str | None = None
    utm_campaign: str | None = None

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp.isoformat(),
            "user_id": self.user_id,
            "session_id": self.session_id,
            "query": self.query,
            "results_count": self.results_count,
            "page": self.page,
            "platform": self.platform,
            "device_type": self.device_type,
            "geo": {"country": self.geo_country, "city": self.geo_city},
            "utm_source": self.utm_source,
            "utm_campaign": self.utm_campaign,
        }


@dataclass
class ClickEvent:
    search_event_id: str
    session_id: str
    result_id: str
    result_position: int
    result_type: str
    result_price: float
    result_destination: str
    event_id: str = field(default_factory=lambda: str(uuid4()))
    event_type: str = "click"
    timestamp: datetime = field(default_factory=datetime.utcnow)
    user_id: str | None = None
    result_provider: str = "default"

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp.isoformat(),
            "user_id": self.user_id,
            "session_id": self.session_id,
            "search_event_id": self.search_event_id,
            "result_id": self.result_id,
            "result_position": self.result_position,
            "result_type": self.result_type,
            "result_price": self.result_price,
            "result_destination": self.result_destination,
            "result_provider": self.result_provider,
        }


@dataclass
class ConversionEvent:
    click_event_id: str
    session_id: str
    booking_value: float
    commission: float
    product_type: str
    event_id: str = field(default_factory=lambda: str(uuid4()))
    event_type: str = "conversion"
    timestamp: datetime = field(default_factory=datetime.utcnow)
    user_id: str | None = None
    currency: str = "CAD"
    provider: str = "default"

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp.isoformat(),
            "user_id": self.user_id,
            "session_id": self.session_id,
            "click_event_id": self.click_event_id,
            "booking_value": self.booking_value,
            "commission": self.commission,
            "currency": self.currency,
            "product_type": self.product_type,
            "provider": self.provider,
        }


@dataclass
class SeedConfig:
    user_pool_size: int = 10_000
    anonymous_rate: float = 0.2
    click_through_rate: float = 0.3
    conversion_rate: float = 0.1


class EventGenerator:
    def __init__(self, config: SeedConfig):
        self.config = config
        self.user_pool = [f"user_{i}" for i in range(config.user_pool_size)]
        self.destinations = ["Miami", "Toronto", "NYC", "LA", "Vegas", "Cancun"]
        self.queries = [
            "cheap flights to {dest}",
            "hotels in {dest}",
            "vacation packages {dest}",
            "{dest} deals",
        ]
        self.platforms = ["web", "ios", "android"]
        self.devices = ["desktop", "mobile", "tablet"]
        self.utm_sources = ["google", "facebook", "email", "direct", None]

    def generate_session(self) -> Generator[dict, None, None]:
        """Generate a complete user session with search, clicks, conversions."""
        session_id = str(uuid4())
        user_id = (
            random.choice(self.user_pool) if random.random() > self.config.anonymous_rate else None
        )
        num_searches = random.randint(1, 5)
        for _ in range(num_searches):
            search = self._generate_search(session_id, user_id)
            yield search.to_dict()
            if random.random() < self.config.click_through_rate:
                click = self._generate_click(search, session_id, user_id)
                yield click.to_dict()
                if random.random() < self.config.conversion_rate:
                    conversion = self._generate_conversion(click, session_id, user_id)
                    yield conversion.to_dict()

    def _generate_search(self, session_id: str, user_id: str | None) -> SearchEvent:
        dest = random.choice(self.destinations)
        query = random.choice(self.queries).format(dest=dest)
        return SearchEvent(
            query=query,
            session_id=session_id,
            user_id=user_id,
            results_count=random.randint(10, 100),
            platform=random.choice(self.platforms),
            device_type=random.choice(self.devices),
            utm_source=random.choice(self.utm_sources),
        )

    def _generate_click(
        self, search: SearchEvent, session_id: str, user_id: str | None
    ) -> ClickEvent:
        return ClickEvent(
            search_event_id=search.event_id,
            session_id=session_id,
            user_id=user_id,
            result_id=str(uuid4()),
            result_position=random.randint(1, 10),
            result_type=random.choice(["flight", "hotel", "package"]),
            result_price=round(random.uniform(50, 2000), 2),
            result_destination=search.query.split()[-1],
        )

    def _generate_conversion(
        self, click: ClickEvent, session_id: str, user_id: str | None
    ) -> ConversionEvent:
        booking_value = click.result_price
        return ConversionEvent(
            click_event_id=click.event_id,
            session_id=session_id,
            user_id=user_id,
            booking_value=booking_value,
            commission=round(booking_value * 0.1, 2),
            product_type=click.result_type,
        )


class RedisPublisher:
    def __init__(self, client):
        self.client = client

    def publish(self, event: dict) -> None:
        stream = f"events:{event['event_type']}"
        self.client.xadd(stream, {"data": json.dumps(event)})


class FilePublisher:
    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def publish(self, event: dict) -> None:
        event_type = event["event_type"]
        filename = self.output_dir / f"{event_type}_events.jsonl"
        with open(filename, "a") as f:
            f.write(json.dumps(event) + "\n")


def seed_generate(events: int, publisher) -> int:
    """The seed's main loop: sessions until ``events`` events are published to ``publisher``."""
    generator = EventGenerator(SeedConfig())
    emitted = 0
    while emitted < events:
        for event in generator.generate_session():
            publisher.publish(event)
            emitted += 1
            if emitted >= events:
                break
    return emitted


def seed_generate_in_memory(events: int) -> list[str]:
    """The seed's objects and ``json.dumps`` per event, without the per-event file open."""
    generator = EventGenerator(SeedConfig())
    lines: list[str] = []
    while len(lines) < events:
        for event in generator.generate_session():
            lines.append(json.dumps(event))
            if len(lines) >= events:
                break
    return lines


# --- the benchmark -----------------------------------------------------------------------------

SEED_FILE_CAP = 200_000  # the seed's publisher opens the file per event: time a prefix, scale it
SEED_REDIS_CAP = 50_000  # one round trip per XADD: time a prefix, scale it
BENCH_REDIS_DB = 11
STREAMS = tuple(stream_name(t) for t in EVENT_TYPES)


def _ours(events: int, out: Path | None, **faults: float) -> float:
    from generator import GeneratorConfig, generate, write
    from searchflow.config import get_settings

    started = time.perf_counter()
    batch = generate(GeneratorConfig(events=events, seed=1, days=30, **faults))
    if out is not None:
        write(batch, "jsonl", get_settings(), out)
    else:  # a batch in parts (above PART_EVENTS) makes its lines part by part
        for part in batch.parts() if hasattr(batch, "parts") else [batch]:
            for event_type in EVENT_TYPES:
                part.lines(event_type)
    return time.perf_counter() - started


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (the part workers)."""
    import resource

    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def _gated_row(events: int, out: Path) -> Row:
    """What the gated stage does with a batch in parts: build every part on every core, judge it
    with the generation rules, write its JSONL (users and bookings too), rename it into place."""
    from generator import GeneratorConfig, build, write
    from generator.workers import worker_count
    from searchflow.config import get_settings
    from searchflow.quality import checks

    users = max(events // 10, 1_000)
    cpu, started = _cpu_seconds(), time.perf_counter()
    batch = build(GeneratorConfig(events=events, users=users, seed=1, days=90))
    batch.stage(out)
    checks.merge_rules(batch.survey(checks.part_judge()))
    write(batch, "jsonl", get_settings(), out)
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    workers = worker_count(len(batch.part_configs) + 1)
    note = (
        f"{cpu:.1f} CPU s in this process and its {workers} part workers "
        f"({events / cpu / 1e6:.2f}M events per CPU second); {users:,} users"
    )
    return Row("generate", "events -> gate rules + JSONL, parts on every core", events, wall,
               None, ">= 1M/s", note)  # fmt: skip


def run(scale: float) -> list[Row]:
    from generator.config import PART_EVENTS

    events = max(1_000, int(EVENTS * scale))
    _ours(2_000, None)  # warm up imports (pyarrow.compute, pandas) outside the timings
    rows: list[Row] = []

    # Ours is timed REPEAT times (median): single runs move with the kernel's page-fault cost.
    ours = statistics.median(_ours(events, None) for _ in range(REPEAT))
    started = time.perf_counter()
    seed_generate_in_memory(events)
    seed = time.perf_counter() - started
    rows.append(
        Row(
            "generate",
            "events -> JSON lines in memory",
            events,
            ours,
            seed,
            ">=10x",
            f"seed: dataclass + uuid4 + json.dumps per event; ours: median of {REPEAT}",
        )  # fmt: skip
    )

    with tempfile.TemporaryDirectory() as tmp:
        ours = statistics.median(_ours(events, Path(tmp) / f"ours-{i}") for i in range(REPEAT))
        sample = min(events, SEED_FILE_CAP)
        started = time.perf_counter()
        seed_generate(sample, FilePublisher(Path(tmp) / "seed"))
        seed = (time.perf_counter() - started) * events / sample
        note = f"seed: FilePublisher opens the file per event; ours: median of {REPEAT}"
        if sample < events:
            note += f"; timed on {sample:,} events, scaled x{events / sample:g}"
        rows.append(Row("generate", "events -> JSONL files", events, ours, seed, ">=10x", note))

        ours = _ours(
            events, Path(tmp) / "faults", malformed_rate=0.01, duplicate_rate=0.01, late_rate=0.01
        )
        rows.append(_redis_row(events))
        gated = max(2 * PART_EVENTS + 1, int(GATED_EVENTS * scale))
        rows.append(_gated_row(gated, Path(tmp) / "gated"))
        rows.append(
            Row(
                "generate",
                "events -> JSONL, 1% malformed/dup/late",
                events,
                ours,
                None,
                "",
                "fault injection cost (no seed counterpart)",
            )  # fmt: skip
        )
    return rows


def _redis_row(events: int) -> Row:
    """Ours (RESP-encoded XADD in bulk) against the seed's RedisPublisher (one XADD per event)."""
    import redis

    from generator import GeneratorConfig, generate, write
    from searchflow.config import get_settings
    from searchflow.services import redis_url

    base = redis_url(get_settings())
    url = base if base.startswith("unix") else base.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    settings = get_settings(redis_url=url)
    client = redis.Redis.from_url(url)
    try:
        client.delete(*STREAMS)
        started = time.perf_counter()
        batch = generate(GeneratorConfig(events=events, seed=1, days=30))
        write(batch, "redis", settings)
        ours = time.perf_counter() - started
        client.delete(*STREAMS)

        sample = min(events, SEED_REDIS_CAP)
        started = time.perf_counter()
        seed_generate(sample, RedisPublisher(client))
        seed = (time.perf_counter() - started) * events / sample
    finally:
        client.delete(*STREAMS)
        client.close()
    note = "seed: RedisPublisher, one XADD round trip per event"
    if sample < events:
        note += f"; timed on {sample:,} events, scaled x{events / sample:g}"
    return Row("generate", "events -> Redis Streams", events, ours, seed, ">=10x", note)
