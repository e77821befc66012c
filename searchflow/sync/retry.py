"""Retries with backoff for transient failures, on the command-line path.

In served runs Prefect's retries do this job (flows/sync.py); the CLI and ``searchflow run`` have
no Prefect, so the plain code retries itself. Only what :func:`searchflow.sync.failures.is_transient`
calls transient is retried: a permission error, wrong credentials or bad data fail at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from searchflow.sync.failures import is_transient

T = TypeVar("T")


def with_retries(
    fn: Callable[[], T],
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient error wait ``base_delay``, then twice as long each time, and
    call again, ``attempts`` in all."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            sleep(base_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
