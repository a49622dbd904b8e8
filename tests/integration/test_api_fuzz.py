"""The OpenAPI document, fuzzed: every operation called with inputs generated from its own
schema by schemathesis must answer without a 5xx, with a body its documented schema allows.

Reads with an admin key, so that every read answers in full; everything else with an operator
key, so that the acting routes run through (an admin key could revoke itself or edit the rules
other tests rely on: the admin routes answer these calls with 403, and their own tests are in
``test_api.py``). The stream is left out: it never ends."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.api_fleet import Fleet, auth

EXAMPLES = 30


def test_no_generated_input_makes_the_api_fail(client: httpx.Client, fleet: Fleet):
    schema = schemathesis.openapi.from_url(f"{client.base_url}/api/v1/openapi.json")
    reader, actor = auth(fleet, "admin"), auth(fleet, "operator")
    called, failed = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/stream":
            continue

        headers = reader if operation.method.upper() == "GET" else actor

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case, headers: dict[str, str]) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            call(headers=headers)
        except Exception as exc:  # every operation is tried, then all that failed are named
            failed.append(f"{operation.method.upper()} {operation.path}: {exc}")
        called.append(operation.path)
    assert len(called) >= 25
    assert not failed, "\n\n".join(failed)


def test_every_operation_documents_what_it_answers(client: httpx.Client):
    spec = client.get("/api/v1/openapi.json").json()
    undocumented = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            ok = next((answers[s] for s in ("200", "201") if s in answers), None)
            typed = ok is not None and any("schema" in c for c in ok.get("content", {}).values())
            problems = "4XX" in answers and "422" not in answers
            if path not in ("/healthz", "/api/v1/stream") and not (typed and problems):
                undocumented.append(f"{method.upper()} {path}")
    assert not undocumented, undocumented
    assert "Problem" in spec["components"]["schemas"]
