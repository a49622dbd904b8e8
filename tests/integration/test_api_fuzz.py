"""The OpenAPI document, fuzzed: every operation called with inputs generated from its own
schema by schemathesis must answer without a 5xx.

With an operator key, so that the acting routes run through (an admin key could revoke itself
or edit the rules other tests rely on: the admin routes answer these calls with 403, and their
own tests are in ``test_api.py``). The stream is left out: it never ends."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.api_fleet import Fleet, auth

EXAMPLES = 30


def test_no_generated_input_makes_the_api_fail(client: httpx.Client, fleet: Fleet):
    schema = schemathesis.openapi.from_url(f"{client.base_url}/api/v1/openapi.json")
    headers = auth(fleet, "operator")
    called, failed = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/stream":
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            call()
        except Exception as exc:  # every operation is tried, then all that failed are named
            failed.append(f"{operation.method.upper()} {operation.path}: {exc}")
        called.append(operation.path)
    assert len(called) >= 25
    assert not failed, "\n\n".join(failed)
