"""Fixtures and helpers for the serving tests: model folders with real inference.py files, and the
real ``serve`` console script started as a subprocess on 127.0.0.1.

Test modules import the fixtures from here (a second conftest.py would clash with tests/conftest.py
under pytest's default import mode)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, TypeVar

import pytest
from helpers import BIN, clean_environ, free_port

from toolkit import testing
from toolkit.testing import Response


class Server(testing.Server):
    """``toolkit.testing.Server`` with what only the toolkit's own tests send or look at."""

    def post_chunked(self, chunks: list[bytes], content_type: str, accept: Optional[str] = None) -> Response:
        """POST /invocations with a chunked body, one HTTP chunk per item of ``chunks``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest("POST", "/invocations")
            conn.putheader("Content-Type", content_type)
            if accept is not None:
                conn.putheader("Accept", accept)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


def write_model(base: Path, inference: Optional[str], files: Optional[Mapping[str, str]] = None) -> Path:
    """/opt/ml/model with code/inference.py (dedented) and extra files relative to the model folder."""
    model = base / "model"
    (model / "code").mkdir(parents=True, exist_ok=True)
    if inference is not None:
        (model / "code" / "inference.py").write_text(textwrap.dedent(inference))
    for name, text in (files or {}).items():
        path = model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return model


def scrape(port: int) -> dict[str, float]:
    """The Prometheus text served on ``port`` as {'name{labels}': value} (TOOLKIT_METRICS_PORT)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/plain")
        text = resp.read().decode()
    finally:
        conn.close()
    return {name: float(value) for name, _, value in
            (line.rpartition(" ") for line in text.splitlines() if line and not line.startswith("#"))}


def scrape_when(port: int, expected: dict[str, float], timeout: float = 5.0) -> dict[str, float]:
    """The scrape once every series in ``expected`` has its value (a missing one counts as 0), or the
    last one after ``timeout`` s: a worker folds its answers into the table every 50 ms (FOLD_EVERY)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = scrape(port)
        if all(seen.get(name, 0.0) == value for name, value in expected.items()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def accepting(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """``count`` HTTP responses read off ``sock``: (status, body) each (bodies have a Content-Length)."""
    buffer, answers = b"", []
    while len(answers) < count:
        head, sep, rest = buffer.partition(b"\r\n\r\n")
        if sep:
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
            if len(rest) >= length:
                answers.append((int(lines[0].split()[1]), rest[:length]))
                buffer = rest[length:]
                continue
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {len(answers)} answers"
        buffer += data
    return answers


def pipelined(port: int, bodies: list, timeout: float = 60) -> list[tuple[int, bytes]]:
    """POST each of ``bodies`` (JSON) to /invocations in one write on one connection: the (status,
    body) answers, as read off it."""
    wire = b"".join(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
                    for data in (json.dumps(body).encode() for body in bodies))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(wire)
        return read_responses(sock, len(bodies))


def read_until(sock: socket.socket, needle: bytes) -> bytes:
    """What ``sock`` sends until ``needle`` has arrived (raw reads of a streamed answer)."""
    data = b""
    while needle not in data:
        part = sock.recv(65536)
        if not part:
            raise AssertionError(f"connection closed before {needle!r}; got {data!r}")
        data += part
    return data


ServerT = TypeVar("ServerT", bound=Server)


def launch(base: Path, kind: type[ServerT], **variables: str) -> ServerT:
    """Start the real ``serve`` on 127.0.0.1 for the job folder ``base`` (log in base/serve.log)."""
    return kind.start(base, **variables)


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Start ``serve`` on a model folder: start_server(inference_py, files=..., wait=True, **variables)."""
    servers: list[Server] = []

    def start(inference: Optional[str], files: Optional[Mapping[str, str]] = None, wait: bool = True,
              **variables: str) -> Server:
        base = tmp_path_factory.mktemp("opt_ml")
        write_model(base, inference, files)
        server = launch(base, Server, **{"SAGEMAKER_MODEL_SERVER_WORKERS": "2", **variables})
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop(timeout=10)


ECHO = """
    # The smallest AWS-style handler: the default input_fn/output_fn (codecs) and an echo predict_fn.
    def model_fn(model_dir):
        return "echo"

    def predict_fn(input_data, model):
        return input_data
"""


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One echo server shared by a module's tests (they do not change its state)."""
    base = tmp_path_factory.mktemp("echo")
    write_model(base, ECHO)
    server = Server.start(base, SAGEMAKER_MODEL_SERVER_WORKERS="2", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    server.wait_ready()
    yield server
    server.stop(timeout=10)


__all__ = ["BIN", "ECHO", "Response", "Server", "accepting", "clean_environ", "free_port", "pipelined",
           "read_responses", "read_until", "scrape"]
