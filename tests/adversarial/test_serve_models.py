"""Multi-model endpoint: a model whose ``model_fn`` or import ends its process (``os._exit``, a
segfault) or raises SystemExit. The client of POST /models gets a 500 naming the failure, and the
endpoint is as before the load: the same workers, the same models loaded and answering."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from serving.serving_helpers import Response, Server, launch

GOOD = """
    import os

    def model_fn(model_dir):
        return "good"

    def predict_fn(data, model):
        return {"model": model, "pid": os.getpid()}
"""
KILLERS = {
    "os._exit in model_fn": ("""
        import os

        def model_fn(model_dir):
            os._exit(3)
    """, "exited with code 3"),
    "segfault on import": ("""
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV

        def model_fn(model_dir):
            return "never"
    """, "killed by SIGSEGV"),
    "SystemExit in model_fn": ("""
        def model_fn(model_dir):
            raise SystemExit("cannot find CUDA")
    """, "SystemExit: cannot find CUDA"),
}


class Endpoint(Server):
    def load(self, name: str, folder: Path) -> Response:
        return self.request("POST", "/models", json.dumps({"model_name": name, "url": str(folder)}).encode(),
                            {"Content-Type": "application/json"}, timeout=60)

    def listed(self) -> list[str]:
        return [m["modelName"] for m in self.request("GET", "/models").json()["models"]]


def model(root: Path, name: str, inference: str) -> Path:
    folder = root / name / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(textwrap.dedent(inference))
    return folder


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    base = tmp_path_factory.mktemp("mme-killers")
    server = launch(base, Endpoint, SAGEMAKER_MODEL_SERVER_WORKERS="2", SAGEMAKER_MULTI_MODEL="true",
                    TOOLKIT_MEMORY_HEADROOM_MB="0")
    server.wait_ready()
    assert server.load("good", model(base, "good", GOOD)).status == 200
    yield server
    server.stop(timeout=10)


@pytest.mark.parametrize("case", sorted(KILLERS))
def test_a_model_that_ends_its_process_is_a_500_and_the_endpoint_is_as_before(endpoint: Endpoint, case: str,
                                                                               tmp_path: Path) -> None:
    inference, says = KILLERS[case]
    workers = sorted(endpoint.worker_pids())
    resp = endpoint.load("killer", model(tmp_path, "killer", inference))  # main: the connection is dropped
    assert resp.status == 500, resp
    message = resp.json()["message"]
    assert "killer" in message and says in message, message
    # as before the load: the same workers (none died), the same models, all answering
    assert sorted(endpoint.worker_pids()) == workers, endpoint.log
    assert endpoint.listed() == ["good"]
    pids = set()
    for _ in range(20):
        answer = endpoint.request("POST", "/models/good/invoke", b"{}", {"Content-Type": "application/json"})
        assert answer.status == 200, answer
        pids.add(answer.json()["pid"])
    assert pids <= set(workers)
    assert endpoint.request("POST", "/models/killer/invoke", b"{}", {"Content-Type": "application/json"}).status == 404
    assert endpoint.ping() == 200
