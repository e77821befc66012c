"""One verdict per expectation: passed, failed or errored, and the line a person reads about it.

A failed expectation's reason names the suite and the expectation, what was observed, what the
suite expects (thresholds from the suite parameters filled in) and the rule in plain words (the
expectation's ``meta.notes``), so that ``ingestion.batch: column_max_to_be_between
(dead_letter_share) observed 0.3, expected at most 0.05 (dead letters / lines read)`` explains
itself in the batch ledger and on the command line without opening Data Docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """One expectation's status; ``reason`` is its one-line explanation when it did not pass."""

    suite: str
    expectation: str
    status: str  # passed | failed | errored
    observed: str
    reason: str = ""

    def row(self) -> dict[str, Any]:
        """The table row the gate's report shows (suite, expectation, status, observed)."""
        out = asdict(self)
        out.pop("reason")
        return out


def one_line(text: Any, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def judge(
    suite: str, item: Any, parameters: Mapping[str, Any], notes: Mapping[str, str]
) -> Verdict:
    """The verdict on one expectation's result. ``notes`` explain rules that could not be counted
    (see :class:`searchflow.quality.checks.RuleSet`), keyed by the expectation's column."""
    config = item.expectation_config
    label = _label(config)
    error = _raised(item)
    if error is not None:
        error = notes.get(config.kwargs.get("column")) or error
        return Verdict(suite, label, "errored", error, f"{suite}: {label} ({error})")
    observed = _observed(item)
    if item.success:
        return Verdict(suite, label, "passed", observed)
    reason = f"{suite}: {label}"
    if observed:
        reason += f" observed {observed}"
    expected = _expected(config.type, config.kwargs, parameters)
    if expected:
        reason += f", expected {expected}"
    why = (config.meta or {}).get("notes")
    if why:
        reason += f" ({one_line(why, 120)})"
    return Verdict(suite, label, "failed", observed, reason)


# The columns that point a person at a failing row, best first: where the line came from, its id.
# Never a user id (nor a reco key, which holds one): reasons reach the ledger, logs and Prefect
# artifacts, which `searchflow forget` does not rewrite (docs/governance.md).
_POINTERS = ("source_ref", "event_id", "trigger_id")


def examples(rows: Any, limit: int = 3) -> str:
    """``; e.g. events/search/x.jsonl:12, ...``: where to find a few of the rows that broke a rule
    ('' when the rows have no column that points at them)."""
    column = next((c for c in _POINTERS if c in getattr(rows, "columns", ())), None)
    if column is None or not len(rows):
        return ""
    shown = ", ".join(str(v) for v in rows[column].head(limit))
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return one_line(f"; e.g. {column} {shown}{more}", 160)


def _raised(result: Any) -> str | None:
    """The exception message when GX could not evaluate the expectation, else None."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return one_line(info.get("exception_message") or "raised")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return one_line(value.get("exception_message") or "raised")
    return None


def _label(config: Any) -> str:
    kwargs = config.kwargs
    target = kwargs.get("column") or ",".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if kwargs.get(k)
    )
    short = config.type.removeprefix("expect_")
    return f"{short}({target})" if target else short


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _param(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A kwarg's value, with a ``{"$PARAMETER": name}`` reference filled from the suite parameters."""
    if isinstance(value, Mapping) and "$PARAMETER" in value:
        return parameters.get(value["$PARAMETER"])
    return value


def _expected(kind: str, kwargs: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
    """What the expectation asks for, in a few words ('' when its label already says it)."""
    low = _param(kwargs.get("min_value"), parameters)
    high = _param(kwargs.get("max_value"), parameters)
    if kind == "expect_table_row_count_to_equal":
        return f"exactly {_number(_param(kwargs.get('value'), parameters))}"
    if kind.endswith("_to_be_in_set") or kind.endswith("_to_contain_set"):
        values = [str(v) for v in _param(kwargs.get("value_set"), parameters) or []]
        shown = ", ".join(values[:8]) + (", …" if len(values) > 8 else "")
        return f"in {{{shown}}}" if kind.endswith("_in_set") else ""
    if low is not None and high is not None:
        return f"between {_number(low)} and {_number(high)}"
    if high is not None:
        return f"at most {_number(high)}"
    if low is not None:
        return f"at least {_number(low)}"
    return ""


def _observed(result: Any) -> str:
    res = result.result or {}
    config = result.expectation_config
    if config.type == "expect_column_distinct_values_to_contain_set":
        missing = res.get("partial_missing_list")
        if missing is None:
            seen = set(res.get("observed_value") or [])
            missing = [v for v in config.kwargs.get("value_set") or [] if v not in seen]
        return one_line("missing " + ", ".join(map(str, missing)), 100) if missing else ""
    if config.type == "expect_column_values_to_be_in_set" and res.get("partial_unexpected_list"):
        unexpected = ", ".join(str(v) for v in res["partial_unexpected_list"][:5])
        return one_line(f"{res.get('unexpected_count')} unexpected: {unexpected}", 100)
    if "observed_value" in res:
        return one_line(_number(res["observed_value"]), 60)
    if "unexpected_count" in res:
        pct = res.get("unexpected_percent") or 0.0
        return f"{res['unexpected_count']} unexpected ({pct:.2f}%)"
    return ""
