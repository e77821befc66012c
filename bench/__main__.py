"""Run every ``bench/bench_*.py`` module and print one table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench import Row


def _format(rows: list[Row]) -> str:
    header = (
        "area",
        "what",
        "items",
        "ours s",
        "ours rate",
        "seed s",
        "seed rate",
        "ratio",
        "goal",
        "note",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r.area,
                r.what,
                f"{r.items:,}",
                f"{r.ours_seconds:.3f}",
                r.rate(r.ours_seconds),
                "-" if r.seed_seconds is None else f"{r.seed_seconds:.3f}",
                r.rate(r.seed_seconds),
                "-" if r.ratio is None else f"{r.ratio:.1f}x",
                r.goal,
                r.note,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the stated sizes")
    parser.add_argument("--only", action="append", default=[], help="area(s) to run, e.g. ingest")
    args = parser.parse_args(argv)
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    rows: list[Row] = []
    for name in names:
        area = name.removeprefix("bench_")
        if args.only and area not in args.only:
            continue
        started = time.perf_counter()
        print(f"running {area} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"bench.{name}").run(args.scale))
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(area, "FAILED (see above)", 0, 0.0))
        print(f"  {area} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(_format(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
