"""A generated batch: the lines to emit, in order, with the ground truth beside them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from generator.allocator import reuse_freed_memory
from generator.config import GeneratorConfig
from generator.faults import MALFORMED_CLASSES, Emission, plan
from generator.records import Records, build_records
from generator.simulate import Simulation, simulate
from generator.text import to_text_buffer
from searchflow.arrays import string_bytes
from searchflow.events import EVENT_TYPES


@dataclass
class GeneratedBatch:
    """What one run produced, before any sink.

    ``emitted`` holds every line in emission order (see :func:`generator.faults.plan` for the
    columns); :meth:`to_arrow` gives the well-formed events of a type as typed columns, each event
    once (duplicates and malformed lines are not in it), which is the ground truth the rest of the
    platform is checked against.
    """

    batch_id: str
    config: GeneratorConfig
    simulation: Simulation
    emission: Emission

    def lines(self, event_type: str) -> pa.Array:
        """The lines of one stream (file / Redis stream), in emission order."""
        return self.emission.lines(event_type)

    def text(self, event_type: str) -> memoryview:
        """The JSONL bytes of one stream: each line followed by a newline, in emission order.

        A stream no fault touched is the simulation's lines in order, built with their newlines
        (one copy of the text); otherwise the emitted lines get their newlines in a second pass.
        """
        if self.emission.in_pool_order(event_type, self.simulation.count(event_type)):
            return string_bytes(self.simulation.lines(event_type, end="\n"))
        return to_text_buffer(self.lines(event_type))

    @property
    def meta(self) -> pa.Table:
        """What each emitted line is, in emission order (no text; see :class:`Emission`)."""
        return self.emission.meta

    @cached_property
    def emitted(self) -> pa.Table:
        """:attr:`meta` plus the ``line`` text, all streams interleaved in emission order."""
        return self.emission.meta.append_column("line", self.emission.all_lines())

    def stream_table(self, event_type: str) -> pa.Table:
        """The emitted rows of one stream with their text, in emission order."""
        meta = self.emission.meta.filter(pc.equal(self.emission.meta["stream"], event_type))
        return meta.append_column("line", self.lines(event_type))

    def to_arrow(self, event_type: str) -> pa.Table:
        """Well-formed events of one type, typed (``geo`` flattened to geo_country/geo_city).

        These are the simulation's events, each once, before any fault is injected: malformed,
        duplicated and late lines are deliberate test input for ingestion, so the generation
        gate judges these tables, never the emitted lines.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        return self.simulation.table(event_type)

    @cached_property
    def records(self) -> Records:
        """The site's user profiles and bookings for this run's period (:mod:`generator.records`)."""
        return build_records(self.config, self.simulation.users.home, self.to_arrow("conversion"))

    def clean_tables(self) -> dict[str, pa.Table]:
        """:meth:`to_arrow` of every event type: the clean simulation the generation gate judges."""
        return {event_type: self.to_arrow(event_type) for event_type in EVENT_TYPES}

    def to_pandas(self, event_type: str):
        return self.to_arrow(event_type).to_pandas()

    def counts(self, upto: int | None = None) -> dict[str, Any]:
        """Ground truth: well-formed events per type, lines per stream, faults per kind.

        ``upto`` counts only the first ``upto`` emitted lines (a live run stopped early).
        """
        meta = self.meta if upto is None else self.meta.slice(0, upto)
        fault = meta["fault"]
        reasons = meta.filter(pc.equal(fault, "malformed"))["reason"]
        by_reason = {r: int(pc.sum(pc.equal(reasons, r)).as_py() or 0) for r in MALFORMED_CLASSES}
        streams = meta["stream"]
        first_sends = meta.filter(pc.is_in(fault, pa.array(["none", "late"])))["stream"]
        return {
            "events": meta.num_rows,
            **{t: int(pc.sum(pc.equal(first_sends, t)).as_py() or 0) for t in EVENT_TYPES},
            "lines": {t: int(pc.sum(pc.equal(streams, t)).as_py() or 0) for t in EVENT_TYPES},
            "malformed": sum(by_reason.values()),
            "malformed_by_class": by_reason,
            "duplicates": int(pc.sum(pc.equal(fault, "duplicate")).as_py() or 0),
            "late": int(pc.sum(pc.equal(fault, "late")).as_py() or 0),
        }


def build(config: GeneratorConfig) -> GeneratedBatch:
    """Simulate the events and plan their emission; touches no file or server, so the batch can
    be gated in memory before any sink sees it.

    A bulk batch above ``PART_EVENTS`` events comes back as a :class:`generator.parts.PartedBatch`
    instead: the same API for the gate and the sinks, built part by part when it is surveyed or
    written, so its memory is one part's."""
    reuse_freed_memory()
    if config.part_count > 1:
        from generator.parts import PartedBatch

        return PartedBatch(config)  # type: ignore[return-value]
    sim = simulate(config)
    return GeneratedBatch(config.batch_id, config, sim, plan(config, sim))


generate = build  # the name the tests, benches and earlier callers use
