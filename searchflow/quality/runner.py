"""Running a gate: load the batch, validate it against the committed suites, decide, report.

The stage's checkpoint (``expectations/checkpoints/<stage>.json``) names its validation
definitions. GX's ``Checkpoint.run`` hands one set of batch parameters to all of them, and each of
ours validates a different dataframe, so the definitions are run one by one under one run id and
the Data Docs are then built for exactly those results (incremental: the index and the new pages).

Outcome: ``passed``; ``failed`` when an expectation was evaluated and not met; ``errored`` when an
expectation (or the batch itself) raised instead of being evaluated. Errored is never passed and
blocks like failed; the outcome lists the two apart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.errors import UsageError
from searchflow.quality import artifacts, batches, history, quarantine
from searchflow.quality.context import data_docs_dir, get_context, validations_dir

STAGES = ("generation", "ingestion", "transformation", "sync")


def stage_key(stage: str, summary: Mapping[str, Any]) -> str:
    """``generation`` ... or ``sync.<name>``: each sync is gated, and reported, on its own."""
    return f"sync.{summary.get('sync')}" if stage == "sync" else stage


def _one_line(text: Any, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _raised(result: Any) -> str | None:
    """The exception message when GX could not evaluate the expectation, else None."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return _one_line(info.get("exception_message") or "raised")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return _one_line(value.get("exception_message") or "raised")
    return None


def _label(config: Any) -> str:
    kwargs = config.kwargs
    target = kwargs.get("column") or ",".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if kwargs.get(k)
    )
    short = config.type.removeprefix("expect_")
    return f"{short}({target})" if target else short


def _observed(result: Any) -> str:
    res = result.result or {}
    config = result.expectation_config
    if config.type == "expect_column_distinct_values_to_contain_set":
        missing = res.get("partial_missing_list")
        if missing is None:
            seen = set(res.get("observed_value") or [])
            missing = [v for v in config.kwargs.get("value_set") or [] if v not in seen]
        return _one_line("missing " + ", ".join(map(str, missing)), 100) if missing else ""
    if config.type == "expect_column_values_to_be_in_set" and res.get("partial_unexpected_list"):
        unexpected = ", ".join(str(v) for v in res["partial_unexpected_list"][:5])
        return _one_line(f"{res.get('unexpected_count')} unexpected: {unexpected}", 100)
    if "observed_value" in res:
        value = res["observed_value"]
        return _one_line(f"{value:.4g}" if isinstance(value, float) else value, 60)
    if "unexpected_count" in res:
        pct = res.get("unexpected_percent") or 0.0
        return f"{res['unexpected_count']} unexpected ({pct:.2f}%)"
    return ""


def run_gate(
    stage: str, settings: Settings, summary: Mapping[str, Any], data: Any = None
) -> dict[str, Any]:
    """Validate the stage's batch; returns the outcome (never raises for a failed batch)."""
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    started = time.perf_counter()
    key = stage_key(stage, summary)
    batch_id = str(summary.get("batch_id") or "") or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    outcome: dict[str, Any] = {
        "stage": stage,
        "key": key,
        "batch_id": batch_id,
        "status": "passed",
        "evaluated": 0,
        "passed": 0,
        "failed": 0,
        "errored": 0,
        "failed_expectations": [],
        "errored_expectations": [],
        "quarantined": 0,
        "quarantine": None,
        "report": None,
        "index": str(data_docs_dir(settings) / "index.html"),
        "results": [],
        "counts": {},
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    rows: list[dict[str, Any]] = []
    try:
        batch = _load(stage, settings, summary, data)
    except Exception as exc:  # the batch could not be read: nothing was validated, so it blocks
        outcome.update(status="errored", errored=1)
        outcome["errored_expectations"] = [f"{key} batch: {_one_line(exc)}"]
        return _finish(settings, outcome, rows, started)
    outcome["counts"] = batch.counts
    _validate(settings, key, batch_id, batch, outcome, rows)
    return _finish(settings, outcome, rows, started)


def _load(stage: str, settings: Settings, summary: Mapping[str, Any], data: Any) -> Any:
    if stage == "generation":
        return batches.generation(settings, summary, data)
    if stage == "ingestion":
        return batches.ingestion(settings, summary)
    if stage == "transformation":
        return batches.transformation(settings, summary)
    return batches.sync(settings, summary)


def _validate(
    settings: Settings,
    key: str,
    batch_id: str,
    batch: batches.StageBatch,
    outcome: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = get_context(settings, batch.postgres_url)
    checkpoint = _checkpoint(context, batch.checkpoint)
    run_id = RunIdentifier(run_name=f"{key}-{batch_id}", run_time=datetime.now(UTC))
    result_keys = []
    failing: list[quarantine.Failing] = []
    for definition in checkpoint.validation_definitions:
        frame = batch.frames.get(definition.name)
        try:
            result = definition.run(
                checkpoint_id=checkpoint.id,
                batch_parameters=None if frame is None else {"dataframe": frame},
                expectation_parameters=batch.parameters,
                result_format=checkpoint.result_format,
                run_id=run_id,
            )
        except Exception as exc:  # the batch (e.g. a Postgres table) could not be validated at all
            outcome["errored"] += 1
            outcome["errored_expectations"].append(f"{definition.name}: {_one_line(exc)}")
            rows.append(_row(definition.name, "(batch)", "errored", _one_line(exc, 80)))
            continue
        result_keys.append(
            ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
                run_id=run_id,
                batch_identifier=result.batch_id,
            )
        )
        for item in result.results:
            config = item.expectation_config
            label = f"{definition.name}: {_label(config)}"
            error = _raised(item)
            outcome["evaluated"] += 1
            rules = batch.rules.get(definition.name)
            if error is not None:
                why = rules.notes.get(config.kwargs.get("column")) if rules else None
                error = why or error
                outcome["errored"] += 1
                outcome["errored_expectations"].append(f"{label} ({error})")
                rows.append(_row(definition.name, _label(config), "errored", error))
            elif item.success:
                outcome["passed"] += 1
                rows.append(_row(definition.name, _label(config), "passed", _observed(item)))
            else:
                observed = _observed(item)
                outcome["failed"] += 1
                outcome["failed_expectations"].append(
                    f"{label} observed {observed}" if observed else label
                )
                rows.append(_row(definition.name, _label(config), "failed", observed))
                if not (config.meta or {}).get("quarantine"):
                    continue
                if rules is not None:  # a rule counted set-wise: select its rows again
                    picked = rules.rows(config.kwargs.get("column"), batch.parameters)
                    if picked is not None and len(picked[1]):
                        failing.append(quarantine.Failing(definition.name, _label(config), *picked))
                elif frame is not None:
                    found = quarantine.failing_mask(frame, config.type, config.kwargs)
                    if found is not None and found[0].any():
                        failing.append(
                            quarantine.Failing(
                                definition.name, _label(config), found[1], frame[found[0]]
                            )
                        )
    if outcome["errored"]:
        outcome["status"] = "errored"
    elif outcome["failed"]:
        outcome["status"] = "failed"
    if result_keys:
        from searchflow.quality import docs

        docs.build(context, result_keys)
        worst = next(
            (k for k, r in zip(result_keys, _statuses(rows, result_keys), strict=False) if r),
            result_keys[0],
        )
        outcome["report"] = _page(context, worst)
        outcome["results"] = [str(_result_path(settings, k)) for k in result_keys]
    if failing:
        written = quarantine.write(settings, key, batch_id, failing)
        outcome["quarantined"] = written["rows"]
        outcome["quarantine"] = written["where"]


_CHECKPOINTS: dict[tuple[int, str], Any] = {}


def _checkpoint(context: Any, name: str) -> Any:
    """The stage's checkpoint, read from the store once per context (it is committed, not runtime)."""
    key = (id(context), name)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = context.checkpoints.get(name)
    return _CHECKPOINTS[key]


def _statuses(rows: list[dict[str, Any]], result_keys: list[Any]) -> list[bool]:
    """Per result key, whether its suite has a failed or errored expectation."""
    bad = {r["suite"] for r in rows if r["status"] != "passed"}
    return [k.expectation_suite_identifier.name in bad for k in result_keys]


def _page(context: Any, result_key: Any) -> str | None:
    """The Data Docs page of one validation result, as a local path."""
    for site in context.get_docs_sites_urls(resource_identifier=result_key):
        url = site.get("site_url")
        if url:
            return url.removeprefix("file://")
    return None


def _result_path(settings: Settings, result_key: Any) -> Path:
    """Where the validation results store keeps one result (its tuple key as folders)."""
    parts = [str(p) for p in result_key.to_tuple()]
    return validations_dir(settings).joinpath(*parts[:-1], parts[-1] + ".json")


def _row(suite: str, expectation: str, status: str, observed: str) -> dict[str, Any]:
    return {"suite": suite, "expectation": expectation, "status": status, "observed": observed}


def _finish(
    settings: Settings, outcome: dict[str, Any], rows: list[dict[str, Any]], started: float
) -> dict[str, Any]:
    outcome["seconds"] = round(time.perf_counter() - started, 3)
    outcome["message"] = message(outcome)
    outcome["artifact"] = artifacts.publish(outcome, rows)
    history.record(settings, outcome)
    return outcome


def message(outcome: Mapping[str, Any]) -> str:
    """One line naming the stage, the batch and each failed or errored expectation."""
    head = f"{outcome['key']} gate {outcome['status']} on batch {outcome['batch_id']}"
    if outcome["status"] == "passed":
        return f"{head}: {outcome['passed']} of {outcome['evaluated']} expectations passed"
    parts = []
    if outcome["failed_expectations"]:
        parts.append("failed: " + "; ".join(outcome["failed_expectations"]))
    if outcome["errored_expectations"]:
        parts.append("errored: " + "; ".join(outcome["errored_expectations"]))
    where = outcome.get("report") or outcome.get("index")
    return f"{head}: {' | '.join(parts)} (report: {where})"
