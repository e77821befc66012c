"""Benchmarks: ``python -m bench`` (``make bench``) prints our figure, the seed-style figure, the ratio.

Each ``bench/bench_<area>.py`` module exposes ``run(scale: float) -> list[Row]``. Benchmarks print;
they never fail on time. ``--scale 0.1`` runs everything at a tenth of the stated sizes.
"""

from __future__ import annotations

from dataclasses import dataclass


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
