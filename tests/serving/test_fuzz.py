"""Schema-driven fuzzing (schemathesis) of every route in docs/openapi.yaml against a running
`serve` with the default codecs: whatever the input, the answer is never a 5xx, it conforms to the
document, and the server still answers /ping afterwards. The single-model routes are fuzzed against
a single-model server, all routes (the /models API too) against a multi-model endpoint whose shared
code is the echo model, so any folder the fuzzer names can be loaded. Each case checks the server
afterwards itself, so the tests hold in any order, alone or together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

import pytest
import serving_helpers
from serving_helpers import ECHO, Server, write_model

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the importorskip)

echo_server = serving_helpers.echo_server  # the fixture


@schemathesis.serializer("application/jsonlines", "application/x-npy", "application/x-npz")
def as_bytes(ctx, value) -> bytes:
    """Whatever the fuzzer generated for these types, sent as bytes (mostly not valid NPY/NPZ: good)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()
schema = schemathesis.openapi.from_path(str(Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"))
single_model = schema.exclude(path_regex="^/models")


@pytest.fixture(scope="module")
def multi_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("mme-fuzz")
    write_model(base, ECHO)  # <base>/model/code: the code of every model that brings none
    server = Server.start(base, SAGEMAKER_MODEL_SERVER_WORKERS="2", SAGEMAKER_MAX_PAYLOAD_IN_MB="1",
                          SAGEMAKER_MULTI_MODEL="true", TOOLKIT_MEMORY_HEADROOM_MB="0").wait_ready()
    loaded = server.request("POST", "/models", json.dumps({"model_name": "echo", "url": str(base / "model")}).encode())
    assert loaded.status == 200, loaded
    yield server
    server.stop(timeout=10)


def still_serving(case, server: Server, model: Optional[str]) -> None:
    """After a case: /ping still 200, no traceback logged, and ``model`` (loaded before the fuzzing)
    still there unless the case itself unloaded it."""
    assert server.request("GET", "/ping", timeout=30).status == 200, (case.method, case.path, server.log[-2000:])
    assert "Traceback" not in server.log, (case.method, case.path, server.log[-2000:])
    unloaded = case.method.upper() == "DELETE" and (case.path_parameters or {}).get("name") == model
    if model and not unloaded:
        assert server.request("GET", f"/models/{model}", timeout=30).status == 200, (case.method, case.path)


def check(case, server: Server, model: Optional[str] = None) -> None:
    response = case.call(base_url=f"http://127.0.0.1:{server.port}", timeout=30)
    assert response.status_code < 500, (case.method, case.path, case.headers, case.body, response.text)
    # every check but "schema-valid data is accepted": the echo model cannot answer arbitrary bytes
    # as JSON, and a 406 saying so is the right answer, not a failure of the server
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    still_serving(case, server, model)


@single_model.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_get_no_5xx(case, echo_server: Server) -> None:
    check(case, echo_server)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_to_a_multi_model_endpoint_get_no_5xx(case, multi_model_server: Server) -> None:
    check(case, multi_model_server, "echo")
