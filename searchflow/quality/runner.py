"""Running a gate: load the batch, validate it against the committed suites, decide, report.

The stage's checkpoint (``expectations/checkpoints/<stage>.json``) names its validation
definitions. GX's ``Checkpoint.run`` hands one set of batch parameters to all of them, and each of
ours validates a different dataframe, so the definitions are run one by one under one run id and
the Data Docs are then built for exactly those results (incremental: the index and the new pages).

Outcome: ``passed``; ``failed`` when an expectation was evaluated and not met; ``errored`` when an
expectation (or the batch itself) raised instead of being evaluated. Errored is never passed and
blocks like failed; the outcome lists the two apart. The outcome carries everything the callers
record or show: the reasons (one line per failed or errored expectation) for the batch ledger, and
one row per expectation for the orchestration floor's report (a Prefect artifact); the gate itself
knows nothing of Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.contract import STAGES
from searchflow.errors import UsageError
from searchflow.quality import batches, history, quarantine
from searchflow.quality.context import data_docs_dir, get_context, validations_dir
from searchflow.quality.verdicts import Verdict, examples, judge, one_line

BATCH = "(batch)"  # the expectation column of a verdict about a whole batch that was not validated


def stage_key(stage: str, summary: Mapping[str, Any]) -> str:
    """``generation`` ... or ``sync.<name>``: each sync is gated, and reported, on its own."""
    return f"sync.{summary.get('sync')}" if stage == "sync" else stage


@dataclass
class Validation:
    """What validating one gate input produced: a verdict per expectation, the stored results'
    keys (for Data Docs), and the failing rows to quarantine."""

    context: Any = None
    verdicts: list[Verdict] = field(default_factory=list)
    result_keys: list[Any] = field(default_factory=list)
    failing: list[quarantine.Failing] = field(default_factory=list)


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
        "quarantined": 0,
        "quarantine": None,
        "report": None,
        "index": str(data_docs_dir(settings) / "index.html"),
        "results": [],
        "counts": {},
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        batch = _load(stage, settings, summary, data)
    except Exception as exc:  # the batch could not be read: nothing was validated, so it blocks
        error = one_line(exc)
        unread = Verdict(f"{key} batch", BATCH, "errored", error, f"{key} batch: {error}")
        return _finish(settings, outcome, [unread], started)
    outcome["counts"] = batch.counts
    validation = _validate(settings, key, batch_id, batch)
    if validation.result_keys:
        outcome.update(_report(settings, validation))
    if validation.failing:
        written = quarantine.write(settings, key, batch_id, validation.failing)
        outcome.update(quarantined=written["rows"], quarantine=written["where"])
    return _finish(settings, outcome, validation.verdicts, started)


def _load(stage: str, settings: Settings, summary: Mapping[str, Any], data: Any) -> Any:
    if stage == "generation":
        return batches.generation(settings, summary, data)
    if stage == "ingestion":
        return batches.ingestion(settings, summary)
    if stage == "transformation":
        return batches.transformation(settings, summary)
    return batches.sync(settings, summary)


def _validate(settings: Settings, key: str, batch_id: str, batch: batches.StageBatch) -> Validation:
    """Run each validation definition of the stage's checkpoint under one run id."""
    from great_expectations.core.run_identifier import RunIdentifier

    context = get_context(settings, batch.postgres_url)
    checkpoint = _checkpoint(context, batch.checkpoint)
    run_id = RunIdentifier(run_name=f"{key}-{batch_id}", run_time=datetime.now(UTC))
    validation = Validation(context=context)
    for definition in checkpoint.validation_definitions:
        _run_definition(definition, checkpoint, batch, run_id, validation)
    return validation


def _run_definition(
    definition: Any,
    checkpoint: Any,
    batch: batches.StageBatch,
    run_id: Any,
    validation: Validation,
) -> None:
    """Validate one definition's frame (or SQL asset) and judge each of its expectations."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    name = definition.name
    frame = batch.frames.get(name)
    try:
        result = definition.run(
            checkpoint_id=checkpoint.id,
            batch_parameters=None if frame is None else {"dataframe": frame},
            expectation_parameters=batch.parameters,
            result_format=checkpoint.result_format,
            run_id=run_id,
        )
    except Exception as exc:  # the batch (e.g. a Postgres table) could not be validated at all
        error = one_line(exc)
        validation.verdicts.append(
            Verdict(name, BATCH, "errored", one_line(exc, 80), f"{name}: {error}")
        )
        return
    validation.result_keys.append(
        ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
            run_id=run_id,
            batch_identifier=result.batch_id,
        )
    )
    rules = batch.rules.get(name)
    for item in result.results:
        verdict = judge(name, item, batch.parameters, rules.notes if rules else {})
        validation.verdicts.append(verdict)
        if verdict.status == "failed" and (item.expectation_config.meta or {}).get("quarantine"):
            found = _failing(name, verdict.expectation, item.expectation_config, batch, frame)
            if found is not None:
                validation.failing.append(found)
                validation.verdicts[-1] = replace(
                    verdict, reason=verdict.reason + examples(found.rows)
                )


def _failing(
    suite: str, expectation: str, config: Any, batch: batches.StageBatch, frame: Any
) -> quarantine.Failing | None:
    """The rows that broke a failed row-level expectation, for the quarantine (None: no rows)."""
    rules = batch.rules.get(suite)
    if rules is not None:  # a rule counted set-wise: select its rows again
        picked = rules.rows(config.kwargs.get("column"), batch.parameters)
        if picked is not None and len(picked[1]):
            return quarantine.Failing(suite, expectation, *picked)
        return None
    if frame is not None:
        found = quarantine.failing_mask(frame, config.type, config.kwargs)
        if found is not None and found[0].any():
            return quarantine.Failing(suite, expectation, found[1], frame[found[0]])
    return None


def _report(settings: Settings, validation: Validation) -> dict[str, Any]:
    """Build the Data Docs of these results; the page to show is the first suite that did not pass."""
    from searchflow.quality import docs

    context = validation.context
    keys = validation.result_keys
    docs.build(context, keys)
    bad = {v.suite for v in validation.verdicts if v.status != "passed"}
    worst = next((k for k in keys if k.expectation_suite_identifier.name in bad), keys[0])
    return {
        "report": _page(context, worst),
        "results": [str(_result_path(settings, k)) for k in keys],
    }


_CHECKPOINTS: dict[tuple[int, str], Any] = {}


def _checkpoint(context: Any, name: str) -> Any:
    """The stage's checkpoint, read from the store once per context (it is committed, not runtime)."""
    key = (id(context), name)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = context.checkpoints.get(name)
    return _CHECKPOINTS[key]


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


def _finish(
    settings: Settings, outcome: dict[str, Any], verdicts: list[Verdict], started: float
) -> dict[str, Any]:
    """Tally the verdicts into the outcome, write the history line, return it."""
    evaluated = [v for v in verdicts if v.expectation != BATCH]
    failed = [v.reason for v in verdicts if v.status == "failed"]
    errored = [v.reason for v in verdicts if v.status == "errored"]
    outcome.update(
        status="errored" if errored else "failed" if failed else "passed",
        evaluated=len(evaluated),
        passed=sum(v.status == "passed" for v in evaluated),
        failed=len(failed),
        errored=len(errored),
        failed_expectations=failed,
        errored_expectations=errored,
        reasons=failed + errored,
        expectations=[v.row() for v in verdicts],
        seconds=round(time.perf_counter() - started, 3),
    )
    outcome["message"] = message(outcome)
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
