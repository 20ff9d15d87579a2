"""Schema-driven fuzzing (schemathesis) of every route in docs/openapi.yaml against a running
`serve` with the default codecs: whatever the input, the answer is never a 5xx, it conforms to the
document, and the server still answers /ping afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import serving_helpers
from serving_helpers import Server

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the importorskip)

echo_server = serving_helpers.echo_server  # the fixture


@schemathesis.serializer("application/jsonlines", "application/x-npy", "application/x-npz")
def as_bytes(ctx, value) -> bytes:
    """Whatever the fuzzer generated for these types, sent as bytes (mostly not valid NPY/NPZ: good)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()
schema = schemathesis.openapi.from_path(str(Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_get_no_5xx(case, echo_server: Server) -> None:
    response = case.call(base_url=f"http://127.0.0.1:{echo_server.port}", timeout=10)
    assert response.status_code < 500, (case.method, case.path, case.headers, case.body, response.text)
    # every check but "schema-valid data is accepted": the echo model cannot answer arbitrary bytes
    # as JSON, and a 406 saying so is the right answer, not a failure of the server
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    case.validate_response(response, excluded_checks=[positive_data_acceptance])


def test_server_still_answers_after_the_fuzzing(echo_server: Server) -> None:
    assert echo_server.ping() == 200
    assert "Traceback" not in echo_server.log
