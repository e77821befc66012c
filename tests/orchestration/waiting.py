"""Bounded waiting for the process tests: poll a condition instead of sleeping and hoping."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """True as soon as ``predicate()`` holds, else its value once ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
