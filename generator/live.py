"""Live mode: trickle a batch into a sink at its wall-clock emission times.

The batch is generated with ``live=True``: the k-th event's timestamp is ``start + k / rate``, so
events carry current timestamps. Here each row is sent when the clock reaches its ``emitted_at``
(late rows a little after their timestamp), in small groups, until the batch is done or Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from generator.batch import GeneratedBatch

TICK_SECONDS = 0.1


def trickle(
    batch: GeneratedBatch,
    writer: Any,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Write ``batch`` through ``writer`` (an appender) in real time; returns what was sent."""
    table: pa.Table = batch.emitted
    due = table["emitted_at"].combine_chunks().cast(pa.int64()).to_numpy() / 1e6
    sent = 0
    interrupted = False
    previous = _stop_on_sigterm()
    try:
        while sent < table.num_rows:
            now = clock()
            upto = int(np.searchsorted(due, now, side="right"))
            if upto > sent:
                writer.write(table.slice(sent, upto - sent))
                sent = upto
            if sent < table.num_rows:
                sleep(max(0.0, min(TICK_SECONDS, due[sent] - clock())))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.commit()
        writer.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return {"sent": sent, "interrupted": interrupted, "finished_at": datetime.now(UTC)}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm():
    """SIGTERM (a worker cancelling the run, ``kill``) stops the trickle like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)
