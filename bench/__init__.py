"""Benchmarks: ``python -m bench`` (``make bench``) prints our figure, the seed-style figure, the ratio.

Each ``bench/bench_<area>.py`` module exposes ``run(scale: float) -> list[Row]``. Benchmarks print;
they never fail on time. ``--scale 0.1`` runs everything at a tenth of the stated sizes.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One measured comparison. ``seed_seconds`` is None where there is no seed-style counterpart."""

    area: str
    what: str
    items: int
    ours_seconds: float
    seed_seconds: float | None = None
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.seed_seconds is None or self.ours_seconds <= 0:
            return None
        return self.seed_seconds / self.ours_seconds

    def rate(self, seconds: float | None) -> str:
        if not seconds or not self.items:
            return "-"
        per_second = self.items / seconds
        return f"{per_second / 1e6:.2f}M/s" if per_second >= 1e5 else f"{per_second / 1e3:.1f}k/s"


def median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The (wall, cpu) seconds of the run with the median wall time (an odd number of runs)."""
    return sorted(runs)[len(runs) // 2]


def scratch_database(prefix: str) -> tuple[Any, str, str]:
    """A fresh PostgreSQL database for one benchmark: (admin connection, name, URL).

    Drop it with :func:`drop_scratch_database`; the benchmark never touches the user's data.
    """
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    from searchflow.config import get_settings
    from searchflow.services import postgres_url

    admin_url = postgres_url(get_settings())
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return admin, name, urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_scratch_database(admin: Any, name: str) -> None:
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def scratch_redis(env_var: str, default_db: int) -> tuple[str, Any]:
    """(URL, client) of a Redis logical database for one benchmark, flushed first.

    The database number comes from ``env_var`` (default ``default_db``) so a developer can keep the
    benchmark away from data of their own.
    """
    import redis

    from searchflow.config import get_settings
    from searchflow.services import redis_url, with_redis_db

    url = with_redis_db(redis_url(get_settings()), int(os.environ.get(env_var, str(default_db))))
    client = redis.Redis.from_url(url)
    client.flushdb()
    return url, client
