"""Retries with backoff for transient connection errors, on the command-line path.

In served runs Prefect task retries do this job (flows/sync.py); the CLI and ``searchflow run`` have
no Prefect, so the plain code retries itself. Only connection-level failures are retried: a
permission error or bad data fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from searchflow.errors import ServiceUnavailable

T = TypeVar("T")


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions worth another attempt: the server did not answer or dropped the connection."""
    import psycopg2
    import redis

    return (
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
        redis.ConnectionError,
        redis.TimeoutError,
        ConnectionError,
        TimeoutError,
        ServiceUnavailable,
    )


def with_retries(
    fn: Callable[[], T],
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait 0.5 s, 1 s, ... and call again, ``attempts`` in all."""
    transient = transient_errors()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except transient:
            if attempt == attempts:
                raise
            sleep(base_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
