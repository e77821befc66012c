"""PostgreSQL going away in the middle of a sync, for real: the destination is unchanged, a re-run
converges, and the failed run reaches crm.sync_runs once Postgres answers again."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg2
import pytest

from searchflow.errors import ServiceUnavailable
from searchflow.sync import is_transient, pending_runs, postgres_sync, run_sync

from .marts import segment_row
from .proxy import CuttableProxy

pytestmark = pytest.mark.services


def rows(url: str, sql: str) -> list[tuple]:
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def destination(url: str) -> list[tuple]:
    return rows(
        url, "SELECT user_id, segment, total_searches FROM crm.user_segments ORDER BY user_id"
    )


@pytest.fixture
def proxy(postgres_url: str):
    parts = urlsplit(postgres_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    proxy.cut()


def _cut_during_upsert(monkeypatch, cut) -> list[int]:
    """Cut the connection after the new rows were COPYed in, before the changed rows go."""
    calls: list[int] = []
    original = postgres_sync.upsert

    def upsert(cur, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            cut(cur)
        return original(cur, *args, **kwargs)

    monkeypatch.setattr(postgres_sync, "upsert", upsert)
    return calls


def test_terminated_backend_rolls_back_and_the_retry_converges(
    service_settings, build_marts, postgres_url, monkeypatch
):
    build_marts(segments=[segment_row(i) for i in range(10)])
    run_sync(service_settings, "user_segments")
    before = destination(postgres_url)
    # Five users change segment, five are new, two leave.
    changed = [segment_row(i, searches=1000) for i in range(2, 7)]
    build_marts(segments=[*changed, *(segment_row(i) for i in range(7, 15))])

    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True

    def terminate(cur) -> None:
        with admin.cursor() as a:
            a.execute("SELECT pg_terminate_backend(%s)", (cur.connection.info.backend_pid,))

    calls = _cut_during_upsert(monkeypatch, terminate)
    with pytest.raises(ServiceUnavailable) as info:
        run_sync(service_settings, "user_segments", attempts=1)
    assert is_transient(info.value)
    assert destination(postgres_url) == before  # the new rows' COPY was rolled back too
    failed = rows(postgres_url, "SELECT status, error FROM crm.sync_runs WHERE status = 'failed'")
    assert len(failed) == 1 and "PostgreSQL failed" in failed[0][1]

    report = run_sync(service_settings, "user_segments", attempts=2)  # a re-run converges
    assert len(calls) == 2 and report["status"] == "succeeded"
    assert (report["inserted"], report["updated"], report["deleted"]) == (5, 5, 2)
    assert destination(postgres_url) == sorted(
        [r[:3] for r in changed] + [segment_row(i)[:3] for i in range(7, 15)]
    )
    admin.close()


def test_failed_run_is_recorded_when_postgres_answers_again(
    service_settings, build_marts, postgres_url, proxy, monkeypatch
):
    build_marts(segments=[segment_row(i) for i in range(10)])
    run_sync(service_settings, "user_segments")
    before = destination(postgres_url)
    build_marts(segments=[segment_row(i, searches=1000) for i in range(12)])
    through_proxy = service_settings.model_copy(update={"postgres_url": proxy.url(postgres_url)})

    _cut_during_upsert(monkeypatch, lambda cur: proxy.cut())  # the server is gone, for good
    with pytest.raises(ServiceUnavailable, match="pending-runs") as info:
        run_sync(through_proxy, "user_segments", attempts=2)
    assert "\n" not in str(info.value)
    assert destination(postgres_url) == before
    assert rows(postgres_url, "SELECT count(*) FROM crm.sync_runs WHERE status = 'failed'") == [
        (0,)
    ]
    (pending,) = pending_runs(service_settings)
    failed_id = pending[1]["run_id"]
    assert pending[1]["status"] == "failed" and pending[1]["sync"] == "user_segments"

    monkeypatch.undo()
    proxy.restore()  # Postgres answers again: the next sync records the failure, then its own run
    report = run_sync(through_proxy, "user_segments")
    assert report["status"] == "succeeded" and report["updated"] == 10
    assert [r["run_id"] for r in report["recorded_failures"]] == [failed_id]
    assert pending_runs(service_settings) == []
    recorded = rows(
        postgres_url,
        f"SELECT status, error LIKE 'PostgreSQL failed%' FROM crm.sync_runs "
        f"WHERE run_id = '{failed_id}'",
    )
    assert recorded == [("failed", True)]
    again = run_sync(through_proxy, "user_segments")
    assert again["recorded_failures"] == []
