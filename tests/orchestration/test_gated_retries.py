"""Retries of the served stages (issue 11): how many, how long, and never for a user's error."""

from __future__ import annotations

import pytest
from prefect.states import Failed

from flows.common import RETRIES, retry_unless_user_error, stage_task
from searchflow.contract import STAGES
from searchflow.errors import GateFailed, SearchflowError, ServiceUnavailable, UsageError


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ServiceUnavailable("PostgreSQL at 127.0.0.1:5432 did not answer"), True),
        (OSError("connection reset by peer"), True),
        (RuntimeError("unexpected"), True),
        (GateFailed("ingestion gate failed"), False),
        (UsageError("--path applies to --source jsonl only"), False),
        (SearchflowError("the warehouse has no raw tables"), False),
    ],
)
def test_only_what_may_be_transient_is_retried(exc: BaseException, retried: bool) -> None:
    assert retry_unless_user_error(None, None, Failed(data=exc)) is retried


def test_retry_counts_and_the_configured_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RETRIES == {"ingestion": 3, "transformation": 2, "sync": 2}
    assert set(RETRIES) <= set(STAGES)
    monkeypatch.setenv("SEARCHFLOW_RETRY_DELAY_SECONDS", "0.5")

    def body() -> int:
        return 1

    task = stage_task("sync", body, "sync-x")
    assert task.retries == 2 and task.retry_delay_seconds == 0.5
    assert task.retry_condition_fn is retry_unless_user_error
    assert task.name == "sync-x"
