"""The event contract: what a well-formed search, click and conversion event carries.

One definition serves both sides of the wire: the generator breaks these rules on purpose to make
malformed events (``generator/faults.py``), and ingestion checks them to dead-letter such events
(``searchflow/ingest/validate.py``). A rule changed here changes what both produce and accept.
"""

from __future__ import annotations

import re

EVENT_TYPES: tuple[str, ...] = ("search", "click", "conversion")

# The dead-letter reasons, in the order ingestion tests them (the first that applies wins).
MALFORMED_CLASSES: tuple[str, ...] = (
    "unparsable",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "impossible_value",
)

# Fields every event of a type must carry with a non-null value, and their JSON kinds.
COMMON_FIELDS: dict[str, str] = {
    "event_id": "string",
    "event_type": "string",
    "timestamp": "timestamp",
    "session_id": "string",
}
REQUIRED_FIELDS: dict[str, dict[str, str]] = {
    "search": {
        **COMMON_FIELDS,
        "query": "string",
        "destination": "string",
        "results_count": "integer",
        "page": "integer",
        "platform": "string",
        "device_type": "string",
        "geo": "object",
    },
    "click": {
        **COMMON_FIELDS,
        "search_event_id": "string",
        "result_id": "string",
        "result_position": "integer",
        "result_type": "string",
        "result_price": "number",
        "result_destination": "string",
        "result_provider": "string",
    },
    "conversion": {
        **COMMON_FIELDS,
        "click_event_id": "string",
        "booking_value": "number",
        "commission": "number",
        "currency": "string",
        "product_type": "string",
        "provider": "string",
    },
}
# Null allowed (anonymous traffic, no campaign). The generator always writes them; ingestion also
# accepts them absent. When present and not null, of this kind.
NULLABLE_FIELDS: dict[str, str] = {
    "user_id": "string",
    "utm_source": "string",
    "utm_campaign": "string",
}
# The values a search's platform and device type take (the generator draws from these pairs'
# members; the generation gate holds a batch with any other).
VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "search": {
        "platform": ("web", "ios", "android"),
        "device_type": ("desktop", "mobile", "tablet"),
    },
}
# Inclusive lower bounds of a well-formed value; below them is ``impossible_value``.
MINIMUMS: dict[str, dict[str, float]] = {
    "search": {"results_count": 0, "page": 1},
    "click": {"result_position": 1, "result_price": 0.01},
    "conversion": {"booking_value": 0.01, "commission": 0},
}
# Exclusive upper bounds: what the typed staging models can hold (INTEGER counts, DECIMAL(18,2)
# money). A value at or above its limit, or not a finite number (NaN, 1e400), is
# ``impossible_value`` at ingestion, so it can never fail a transform.
INTEGER_LIMIT = 2**31
MONEY_LIMIT = 1e16
LIMITS: dict[str, dict[str, float]] = {
    "search": {"results_count": INTEGER_LIMIT, "page": INTEGER_LIMIT},
    "click": {"result_position": INTEGER_LIMIT, "result_price": MONEY_LIMIT},
    "conversion": {"booking_value": MONEY_LIMIT, "commission": MONEY_LIMIT},
}
# The longest line (JSONL line, stream entry, app.events payload) ingestion parses, in bytes; a
# longer one is dead-lettered whole-line as ``unparsable`` with its size, its first bytes kept.
MAX_LINE_BYTES = 2_000_000
# UTC, ISO 8601 with a Z: YYYY-MM-DDTHH:MM:SS[.ffffff]Z. Anything else is ``wrong_type``.
TIMESTAMP_REGEX = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z"
TIMESTAMP_PATTERN = re.compile(f"^{TIMESTAMP_REGEX}$")
