"""`IMAGE serve` as SageMaker runs it: a model folder at /opt/ml/model, HTTP on port 8080 published
on a 127.0.0.1 port, /ping and /invocations, and a stop that lets in-flight requests finish."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from helpers import free_port, wait_for

from .engines import Built, Containers

pytestmark = pytest.mark.container

# Written the way AWS's examples write inference.py: the four functions, nothing toolkit-specific.
INFERENCE = '''
import json, os, time

def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.json")) as fh:
        return json.load(fh)

def input_fn(body, content_type):
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    if content_type.startswith("application/json"):
        return json.loads(text)
    if content_type.startswith("text/csv"):
        return {"rows": [[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()]}
    raise ValueError("unsupported content type " + content_type)

def predict_fn(data, model):
    if data.get("sleep"):
        open(os.path.join("/opt/ml/model", "in-flight"), "w").close()
        time.sleep(data["sleep"])
    return [[v * model["scale"] for v in row] for row in data["rows"]]

def output_fn(prediction, accept):
    if accept.startswith("text/csv"):
        return "\\n".join(",".join(str(v) for v in row) for row in prediction) + "\\n"
    return json.dumps({"predictions": prediction})
'''


def request(url: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, {}, b""


def model_folder(root: Path) -> Path:
    model = root / "model"
    (model / "code").mkdir(parents=True)
    (model / "weights.json").write_text(json.dumps({"scale": 3.0}))
    (model / "code" / "inference.py").write_text(INFERENCE)
    return model


class Endpoint:
    def __init__(self, containers: Any, image: Built, model: Path, inside: int = 8080) -> None:
        self.containers = containers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {} if inside == 8080 else {"SAGEMAKER_BIND_TO_PORT": str(inside)}
        self.name = containers.run(image.tag, "serve", volumes={model: "/opt/ml/model"}, env=env,
                                   publish=f"127.0.0.1:{self.port}:{inside}", detach=True)
        self.model = model

    def wait_ready(self) -> None:
        try:
            wait_for(lambda: request(self.url + "/ping", timeout=2)[0] == 200, 90, "/ping to answer 200")
        except AssertionError:
            raise AssertionError(self.containers.logs(self.name)) from None

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[int, dict, bytes]:
        return request(self.url + "/invocations", body, {"Content-Type": content_type, "Accept": accept})


@pytest.fixture(scope="module")
def endpoint(cpu_image: Built, engine: Any, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Endpoint]:
    box = Containers(engine)
    running = Endpoint(box, cpu_image, model_folder(tmp_path_factory.mktemp("serve")))
    try:
        running.wait_ready()
        yield running
    finally:
        box.cleanup()


def test_ping_answers_200_once_the_model_is_loaded(endpoint: Endpoint) -> None:
    status, _, _ = request(endpoint.url + "/ping")
    assert status == 200


def test_invocations_with_json(endpoint: Endpoint) -> None:
    body = json.dumps({"rows": [[1, 2], [3, 4]]}).encode()
    status, headers, data = endpoint.invoke(body, "application/json", "application/json")
    assert status == 200, data
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(data) == {"predictions": [[3.0, 6.0], [9.0, 12.0]]}


def test_invocations_with_csv(endpoint: Endpoint) -> None:
    status, headers, data = endpoint.invoke(b"1,2\n3,4\n", "text/csv", "text/csv")
    assert status == 200, data
    assert headers["Content-Type"].startswith("text/csv")
    rows = [[float(v) for v in line.split(",")] for line in data.decode().splitlines() if line]
    assert rows == [[3.0, 6.0], [9.0, 12.0]]


def test_stop_finishes_in_flight_requests_and_returns_quickly(cpu_image: Built,
                                                              containers, tmp_path: Path) -> None:
    running = Endpoint(containers, cpu_image, model_folder(tmp_path))
    running.wait_ready()
    answers: list[tuple[int, dict, bytes]] = []
    body = json.dumps({"rows": [[5]], "sleep": 2}).encode()
    client = threading.Thread(target=lambda: answers.append(running.invoke(body, "application/json",
                                                                           "application/json")))
    client.start()
    wait_for(lambda: (running.model / "in-flight").exists(), 30, "the request to reach predict_fn")
    asked = time.monotonic()
    containers.engine("stop", "-t", "30", running.name, timeout=60)
    stopped = time.monotonic() - asked
    client.join(30)
    assert answers, "the in-flight request got no answer"
    status, _, data = answers[0]
    assert status == 200, (data, containers.logs(running.name))
    assert json.loads(data) == {"predictions": [[15.0]]}
    # The request needed about 2 s more; SIGKILL would only come after 30.
    assert stopped < 10, f"podman stop took {stopped:.1f} s"
    assert request(running.url + "/ping", timeout=2)[0] == 0  # nothing listens any more


def test_serve_binds_the_port_sagemaker_asks_for(cpu_image: Built, containers,
                                                 tmp_path: Path) -> None:
    """What the image's accept-bind-to-port=true label promises."""
    running = Endpoint(containers, cpu_image, model_folder(tmp_path), inside=9090)
    running.wait_ready()
    status, _, data = running.invoke(b"2\n", "text/csv", "application/json")
    assert status == 200, data
    assert json.loads(data) == {"predictions": [[6.0]]}
