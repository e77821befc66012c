"""A PostgreSQL database of its own for the warehouse, apart from the destinations' (crm.*)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import scratch_database


@pytest.fixture
def warehouse_url(postgres_admin_url: str) -> Iterator[str]:
    with scratch_database(postgres_admin_url, "sf_test_wh") as url:
        yield url
