"""The user index the hot route reads from memory: it follows a new publication (the pointer swapped)
and a rewrite in place (``searchflow forget``), says when a reload is due (so only the reload leaves
the event loop), and finds the same file as :func:`searchflow.published.mart_path`; and
``GET /users/{id}`` answers 503, not 500, when Redis does not answer."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
from fastapi.testclient import TestClient

from searchflow import published
from searchflow.api import create_app
from searchflow.api.published import USERS_MART, PublishedData
from searchflow.config import Settings


def _publish(home: Path, version: str, segment: str) -> None:
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA marketing")
        con.execute(
            f"CREATE TABLE {USERS_MART} AS SELECT 'user_1' AS user_id, ? AS segment", [segment]
        )
        published.write_snapshot(con, home, version, [USERS_MART])
    finally:
        con.close()


def test_the_index_follows_publications_and_rewrites(home: Path) -> None:
    data = PublishedData(home)
    assert data.version() is None and data.users_ready()
    assert data.user("user_1") == (None, None)

    _publish(home, "v1", "casual")
    assert not data.users_ready()  # a reload is due: the route does it off the event loop
    assert data.user("user_1") == ("v1", {"user_id": "user_1", "segment": "casual"})
    assert data.users_ready()
    assert data.user("nobody") == ("v1", None)

    _publish(home, "v2", "power")
    assert data.version() == "v2" and not data.users_ready()
    assert data.user("user_1")[1]["segment"] == "power"

    time.sleep(0.01)  # a rewrite in place gets a new mtime
    _publish(home, "v2", "dormant")
    assert data.user("user_1") == ("v2", {"user_id": "user_1", "segment": "dormant"})
    assert data._served()[1].resolve() == published.mart_path(home, USERS_MART)


def test_users_without_redis_is_503_naming_it(home: Path, postgres_url: str) -> None:
    _publish(home, "v1", "casual")
    settings = Settings(home=home, postgres_url=postgres_url, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings, prefect_api_url=None)) as client:
        response = client.get("/users/user_1")
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"]
