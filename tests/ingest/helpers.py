"""Small, hand-made inputs per the event contract: well-formed events and one line per malformed
class, so the ingestion tests do not depend on the generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TS = "2025-01-0{day}T1{hour}:00:00.000000Z"


def event(event_type: str, i: int, **overrides: Any) -> dict[str, Any]:
    """A well-formed event of a type; ``i`` makes the id and the time."""
    base: dict[str, Any] = {
        "event_id": f"{event_type[:1]}-{i:06d}",
        "event_type": event_type,
        "timestamp": f"2025-01-01T{i % 24:02d}:{i % 60:02d}:00.{i % 1000000:06d}Z",
        "user_id": None if i % 5 == 0 else f"user_{i % 7}",
        "session_id": f"sess-{i // 3}",
    }
    if event_type == "search":
        base |= {
            "query": "hotels in Lisbon",
            "destination": "Lisbon",
            "results_count": 10 + i % 50,
            "page": 1,
            "platform": "web",
            "device_type": "desktop",
            "geo": {"country": "PT", "city": "Lisbon"},
            "utm_source": "google" if i % 2 else None,
            "utm_campaign": None,
        }
    elif event_type == "click":
        base |= {
            "search_event_id": f"s-{i:06d}",
            "result_id": f"r-{i}",
            "result_position": 1 + i % 10,
            "result_type": "hotel",
            "result_price": 99.5 + i,
            "result_destination": "Lisbon",
            "result_provider": "booking",
        }
    else:
        base |= {
            "click_event_id": f"c-{i:06d}",
            "booking_value": 250.0 + i,
            "commission": 25.0,
            "currency": "EUR",
            "product_type": "hotel",
            "provider": "booking",
        }
    base.update(overrides)
    return base


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def malformed(event_type: str, i: int) -> dict[str, list[str]]:
    """Lines of each malformed class (several variants each) for one stream."""
    good = event(event_type, i)
    number = {"search": "results_count", "click": "result_price", "conversion": "booking_value"}[
        event_type
    ]
    text = line(good)
    return {
        "unparsable": [text[:30], text[:-1], "not json at all", "[1, 2, 3]", "   "],
        "missing_field": [
            line(without(good, "event_id")),
            line(without(good, "timestamp")),
            line({**good, "session_id": None}),
            line(without(good, "event_type")),
        ],
        "wrong_type": [
            line({**good, number: str(good[number])}),
            line({**good, "timestamp": 1735689600}),
            line({**good, "timestamp": "2025-01-01 10:00:00"}),
            line({**good, "user_id": 42}),
        ],
        "unknown_event_type": [
            line({**good, "event_type": "pageview"}),
            line({**good, "event_type": 7}),
        ],
        "impossible_value": [
            line({**good, number: -abs(good[number]) - 1}),
            line({**good, "timestamp": "2025-13-01T00:00:00Z"}),
            line({**good, "timestamp": "1900-01-01T00:00:00Z"}),
        ],
    }


def write_jsonl(root: Path, event_type: str, lines: list[str], name: str = "part-0000") -> Path:
    folder = root / event_type
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(f"{text}\n" for text in lines))
    return path


def append_jsonl(path: Path, lines: list[str]) -> None:
    with path.open("a") as handle:
        handle.write("".join(f"{text}\n" for text in lines))


def bad_lines() -> dict[str, tuple[bytes, str | None, str | None]]:
    """One line per class of issue 11's "no input aborts a load", as raw bytes (no line end):
    ``name -> (line, expected reason or None when it is valid and lands, a word of its detail)``.
    """
    c = event("conversion", 900)
    s = event("search", 901)

    def raw(obj: dict[str, Any]) -> bytes:
        return line(obj).encode()

    valid_cr = line(event("search", 902)).replace(',"page"', ',\r"page"').encode()
    return {
        "over_the_line_limit": (
            raw({**s, "event_id": "s-big", "query": "x" * 2_000_100}),
            "unparsable",
            "over the limit",
        ),
        "not_utf8": (
            raw({**s, "event_id": "s-latin"}).replace(b"Lisbon", b"Lisb\xf3n", 1),
            "unparsable",
            "not UTF-8",
        ),
        "nan": (
            raw(c).replace(b'"booking_value":1150.0', b'"booking_value":NaN'),
            "impossible_value",
            "NaN",
        ),
        "overflow": (
            raw({**c, "event_id": "v-inf"}).replace(
                b'"booking_value":1150.0', b'"booking_value":1e400'
            ),
            "impossible_value",
            "booking_value",
        ),
        "too_big_for_decimal": (
            raw({**c, "event_id": "v-1e17"}).replace(
                b'"booking_value":1150.0', b'"booking_value":1e17'
            ),
            "impossible_value",
            "not below",
        ),
        "too_big_for_integer": (
            raw({**s, "event_id": "s-int", "results_count": 2**31}),
            "impossible_value",
            "results_count",
        ),
        "empty_event_id": (raw({**s, "event_id": ""}), "missing_field", "empty"),
        "trailing_comma": (
            raw({**s, "event_id": "s-comma"})[:-1] + b",}",
            "unparsable",
            "trailing comma",
        ),
        "nul_and_garbage": (
            raw({**s, "event_id": "s-nul"}) + b"\x00garbage",
            "unparsable",
            "NUL",
        ),
        "bare_cr_between_tokens": (valid_cr, None, None),
    }
