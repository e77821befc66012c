"""Schemathesis over the OpenAPI document: generated input (valid and invalid) never gets a 500,
every answer has a status code the document declares and matches its model. Bounded in examples
per operation, so it stays a unit test; it runs on the fixture world, with the real Postgres and
Redis."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from searchflow.api import create_app

pytestmark = pytest.mark.services

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_no_server_error_on_generated_input(api_settings, world) -> None:
    app = create_app(api_settings, prefect_api_url=None)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /health", "GET /users/{user_id}", "POST /runs"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
