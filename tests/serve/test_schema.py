"""The service against its own OpenAPI schema, with schemathesis: every operation, with
bodies, paths and headers generated from the schema (a bounded number of examples), never
answers 5xx, and every error is JSON saying what was wrong."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

import riverbed as rb
from tests.serve.server import serving

EXAMPLES = 25
"""Examples per operation: enough to reach every branch of a handler, quick to run."""


def _flow() -> rb.Flow:
    flow = rb.Flow("schema")
    flow.source(rb.http("web"), name="web").sink(lambda event: None, name="out")
    flow.source(rb.http("echo", reply=True, timeout=5), name="echo").map(
        lambda request: request.reply(request.body)
    ).sink(rb.reply(), name="answer")
    return flow


def test_no_operation_answers_a_server_error() -> None:
    """Generated requests to every operation get no 5xx (the flow is running: no 503 or
    504 either), each 4xx is ``{"error": message}``, and any JSON sent is taken: echoed by
    the replying source, accepted by the other."""
    schemathesis = pytest.importorskip("schemathesis")
    headers = {"Authorization": "Bearer tok"}
    with serving(_flow(), token="tok") as url:
        document = httpx.get(f"{url}/openapi.json", headers=headers).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/events/{source}", "/metrics", "/readyz"}
        for operation in operations:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case) -> None:
                response = case.call(base_url=url, headers=headers, timeout=10)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, f"{where}: {response.text[:300]}"
                if response.status_code >= 400:
                    assert response.json()["error"], where
                if case.formatted_path == "/events/echo":  # the flow echoes each event
                    assert response.status_code == 200, where
                    assert response.json() == case.body, where
                elif case.formatted_path == "/events/web":
                    assert response.status_code == 202, where

            check()
