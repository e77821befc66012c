"""Generated batches held back by their gate, kept until released to their sink or dropped.

The generation gate judges a batch in memory, before any sink sees it. A batch that fails is kept
under ``$SEARCHFLOW_HOME/held/generation/<batch_id>/`` in the JSONL sink's layout
(``<type>/<batch_id>.jsonl``), outside every folder, stream and table that ingestion reads, so no
later ingest lands it. Beside the lines:

- ``meta.arrow``: the per-line truth in emission order (stream, event_id, timestamps, fault,
  reason), so a release sends the lines in the same interleaved order, with the same emission
  times, as the original run would have;
- ``held.json``: the sink and the target it was meant for, the batch's counts and config. It is
  written last: a folder without it is an interrupted hold, not a held batch.

Releasing writes the held lines (not a regenerated batch) to the recorded sink, then removes the
folder. A batch built in parts (above ``PART_EVENTS`` events) keeps only ``held.json``: its lines
could be larger than memory and disk allow twice, and the release rebuilds them from the recorded
config (same arguments, same bytes). A live batch is released in bulk: its lines keep the timestamps they were generated with.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from generator.batch import GeneratedBatch
from generator.faults import Emission
from generator.sinks import check_sink, default_out, jsonl_path, write, write_jsonl, write_whole
from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.events import EVENT_TYPES

HELD_FOLDER = ("held", "generation")
MANIFEST = "held.json"
META = "meta.arrow"


def held_path(settings: Settings, batch_id: str) -> Path:
    """``$SEARCHFLOW_HOME/held/generation/<batch_id>``."""
    if not batch_id or "/" in batch_id or batch_id.startswith("."):
        raise SearchflowError(f"{batch_id!r} is not a generation batch id")
    return settings.home_path.joinpath(*HELD_FOLDER, batch_id)


def write_held(
    settings: Settings, batch: GeneratedBatch, sink: str = "jsonl", out: Path | str | None = None
) -> Path:
    """Keep ``batch`` as JSONL (with its emission order) instead of sending it to ``sink``;
    returns the folder. ``out`` is the JSONL folder it was meant for (default: the home's)."""
    check_sink(sink)
    where = held_path(settings, batch.batch_id)
    (where / MANIFEST).unlink(missing_ok=True)  # held again: incomplete until the manifest is
    parted = hasattr(batch, "write_parts")
    if parted:  # a batch in parts keeps no lines: the release rebuilds them from the config
        batch.discard()  # what a staged survey wrote (PartedBatch.stage)
        where.mkdir(parents=True, exist_ok=True)
    else:
        write_jsonl(batch, where)
        write_whole(where / META, _ipc_bytes(batch.meta))
    manifest = {
        "batch_id": batch.batch_id,
        "sink": sink,
        "out": _target(settings, sink, out),
        "counts": batch.counts(),
        "config": batch.config.canonical(),
        "held_at": datetime.now(UTC).isoformat(),
    }
    if parted:
        manifest["parts"] = len(batch.part_configs)
    write_whole(where / MANIFEST, json.dumps(manifest, indent=2).encode())
    return where


def read_manifest(settings: Settings, batch_id: str) -> dict[str, Any]:
    """What ``held.json`` recorded for a held batch; one line of error when there is none."""
    path = held_path(settings, batch_id) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SearchflowError(
            f"no held generated batch {batch_id} (nothing at {path.parent}); "
            "`searchflow batches list --state held` lists the held batches"
        ) from None
    except (OSError, ValueError) as exc:
        raise SearchflowError(
            f"cannot read {path} ({exc}); drop the batch and generate it again"
        ) from None


def release_held(settings: Settings, batch_id: str) -> dict[str, Any]:
    """Write a held batch's lines to the sink recorded when it was held, then remove the folder.

    Returns the generation summary of the release (batch id, sink, where it went, the counts).
    """
    started = time.perf_counter()
    manifest = read_manifest(settings, batch_id)
    where = held_path(settings, batch_id)
    batch: Any
    if manifest.get("parts"):
        from generator import build, config_from_options

        batch = build(config_from_options(**manifest["config"]))
        if batch.batch_id != batch_id:
            raise SearchflowError(
                f"rebuilding held batch {batch_id} gave {batch.batch_id} (the generator changed "
                "since); discard it and generate again"
            )
    else:
        batch = HeldBatch.read(where, batch_id)
    target = Path(manifest["out"]) if manifest.get("out") and manifest["sink"] == "jsonl" else None
    sent = write(batch, manifest["sink"], settings, target)
    drop_held(settings, batch_id)
    return {
        "batch_id": batch_id,
        "sink": manifest["sink"],
        "out": str(sent["out"]),
        **manifest["counts"],
        "released_from": str(where),
        "seconds": round(time.perf_counter() - started, 3),
    }


def drop_held(settings: Settings, batch_id: str) -> bool:
    """Remove a held batch's folder; False when there was none."""
    where = held_path(settings, batch_id)
    if not where.exists():
        return False
    shutil.rmtree(where)
    return True


@dataclass
class HeldBatch:
    """A held batch read back: what the sinks need (batch id, lines per stream, emission order)."""

    batch_id: str
    emission: Emission

    @classmethod
    def read(cls, where: Path, batch_id: str) -> HeldBatch:
        meta = pa.ipc.open_file(pa.memory_map(str(where / META))).read_all()
        stream = meta["stream"].to_numpy(zero_copy_only=False)
        stream_code = np.empty(len(stream), np.int8)
        pool_index = np.empty(len(stream), np.int64)
        pools: dict[str, pa.Array] = {}
        for code, event_type in enumerate(EVENT_TYPES):
            rows = np.flatnonzero(stream == event_type)
            stream_code[rows] = code
            pool_index[rows] = np.arange(len(rows))
            pools[event_type] = _read_lines(jsonl_path(where, event_type, batch_id))
            if len(pools[event_type]) != len(rows):
                raise SearchflowError(
                    f"held batch {batch_id} is damaged: {len(pools[event_type]):,} {event_type} "
                    f"lines in {where} against {len(rows):,} recorded; drop it and generate again"
                )
        return cls(batch_id, Emission(meta, stream_code, pool_index, pools))

    def lines(self, event_type: str) -> pa.Array:
        return self.emission.lines(event_type)

    @cached_property
    def emitted(self) -> pa.Table:
        return self.emission.meta.append_column("line", self.emission.all_lines())


def _read_lines(path: Path) -> pa.Array:
    """The lines of a JSONL file (each ending in a newline) as Arrow strings, without a Python
    object per line: the file's bytes are the data buffer, the newlines give the offsets."""
    data = path.read_bytes()
    if not data:
        return pa.array([], pa.string())
    if not data.endswith(b"\n"):
        raise SearchflowError(f"{path} does not end with a newline: the held batch is damaged")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    offsets = np.empty(2 * len(ends), np.int64)  # [start, end) of each line, newline excluded
    offsets[0::2], offsets[1::2] = starts, ends
    spans = pa.LargeStringArray.from_buffers(
        2 * len(ends) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    lines = spans.take(pa.array(np.arange(0, 2 * len(ends) - 1, 2, dtype=np.int64)))
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        raise SearchflowError(f"{path} is not UTF-8 text: the held batch is damaged") from None
    return lines.cast(pa.string()) if len(data) < 2**31 else lines


def _ipc_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _target(settings: Settings, sink: str, out: Path | str | None) -> str | None:
    """Where the batch was meant to go: the JSONL folder, or the server (password masked)."""
    if sink == "jsonl":
        return str(Path(out).expanduser().resolve() if out else default_out(settings))
    from searchflow.services import mask_url, postgres_url, redis_url

    return mask_url((redis_url if sink == "redis" else postgres_url)(settings))
