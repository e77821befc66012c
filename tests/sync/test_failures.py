"""Which failures are transient (worth a retry) and which are a person's to fix."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis

from searchflow.errors import GateFailed, SearchflowError, ServiceUnavailable, UsageError
from searchflow.sync import is_transient, run_sync, user_error
from searchflow.sync.retry import with_retries


def _error(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001  the exception is the point
        return exc
    raise AssertionError("no exception")


@pytest.mark.services
def test_real_driver_errors(postgres_url: str):
    down = _error(lambda: psycopg2.connect("postgresql://x@127.0.0.1:1/none", connect_timeout=2))
    assert is_transient(down)
    parts = urlsplit(postgres_url)
    missing = urlunsplit(parts._replace(path="/sf_no_such_database"))
    assert not is_transient(_error(lambda: psycopg2.connect(missing)))
    assert not is_transient(_error(lambda: psycopg2.connect(postgres_url).cursor().execute("x")))
    assert is_transient(_error(lambda: redis.Redis(port=1).ping()))


def test_our_own_errors_and_the_rest():
    assert is_transient(ServiceUnavailable("down"))
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    assert is_transient(redis.TimeoutError()) and is_transient(redis.ConnectionError())
    for exc in (
        SearchflowError("bad"),
        UsageError("bad"),
        GateFailed("held"),
        redis.AuthenticationError("bad password"),
        redis.ResponseError("WRONGTYPE"),
        ValueError("x"),
    ):
        assert not is_transient(exc), exc


def test_user_error_keeps_the_distinction():
    down = psycopg2.OperationalError("could not connect to server: Connection refused")
    assert isinstance(user_error("user_segments", down), ServiceUnavailable)
    denied = psycopg2.OperationalError('FATAL:  password authentication failed for user "x"')
    error = user_error("user_segments", denied)
    assert type(error) is SearchflowError and "SEARCHFLOW_POSTGRES_URL" in str(error)


def test_retries_only_transient_failures():
    calls: list[int] = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return "ok"

    assert with_retries(flaky, attempts=3, sleep=lambda _s: None) == "ok" and len(calls) == 3
    calls.clear()

    def wrong():
        calls.append(1)
        raise psycopg2.OperationalError('FATAL:  database "x" does not exist')

    with pytest.raises(psycopg2.OperationalError):
        with_retries(wrong, attempts=3, sleep=lambda _s: None)
    assert len(calls) == 1


@pytest.mark.services
def test_a_missing_database_is_not_retried_and_not_unavailable(
    service_settings, default_marts, postgres_url
):
    parts = urlsplit(postgres_url)
    settings = service_settings.model_copy(
        update={"postgres_url": urlunsplit(parts._replace(path="/sf_no_such_database"))}
    )
    with pytest.raises(SearchflowError, match="does not exist") as info:
        run_sync(settings, "user_segments", attempts=3)
    assert not is_transient(info.value) and "pending-runs" not in str(info.value)
    assert not is_transient(ServiceUnavailable('cannot connect: database "x" does not exist'))
