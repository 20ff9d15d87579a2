"""``toolkit local transform`` and ``toolkit local serve``: against a small real HTTP server on
127.0.0.1 that records every request (to check batching), and against the real ``serve`` started
from a model.tar.gz."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from localjobs import invoke, local_serve, s3_bytes, s3_keys, toolkit, unique, write_script


class Recorder(BaseHTTPRequestHandler):
    """/ping, /execution-parameters (from the server's ``params``), /invocations: upper-cases
    the body, or answers 400 when it contains "boom"."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, b"")
        elif self.path == "/execution-parameters" and self.server.params is not None:  # type: ignore[attr-defined]
            self._send(200, json.dumps(self.server.params).encode(), "application/json")  # type: ignore[attr-defined]
        else:
            self._send(404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:  # type: ignore[attr-defined]
            server.seen.append((body, self.headers.get("Content-Type"), self.headers.get("Accept")))  # type: ignore[attr-defined]
            server.in_flight += 1  # type: ignore[attr-defined]
            server.most = max(server.most, server.in_flight)  # type: ignore[attr-defined]
        time.sleep(0.02)
        with server.lock:  # type: ignore[attr-defined]
            server.in_flight -= 1  # type: ignore[attr-defined]
        if b"boom" in body:
            self._send(400, json.dumps({"message": "cannot parse boom"}).encode(), "application/json")
        else:
            self._send(200, body.upper())


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.params = None  # type: ignore[attr-defined]
    server.seen = []  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.in_flight = server.most = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_three_files_multirecord_from_s3(s3: Any, s3_env: dict, recorder: ThreadingHTTPServer) -> None:
    bucket = unique("transform")
    s3.create_bucket(Bucket=bucket)
    record = "r" * (300 * 1024)  # four of these do not fit in 1 MB
    files = {"in/a.csv": "".join(f"{i}{record}\n" for i in range(5)),
             "in/b.csv": "x,1\ny,2\n\nz,3",
             "in/sub/c.csv": "only\n"}
    for key, text in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    recorder.params = {"BatchStrategy": "MultiRecord", "MaxPayloadInMB": 1, "MaxConcurrentTransforms": 1}  # type: ignore[attr-defined]
    proc = toolkit("local", "transform", "--endpoint", url(recorder), "--input", f"s3://{bucket}/in/",
                   "--output-path", f"s3://{bucket}/out", "--split-type", "Line", "--assemble-with", "Line",
                   "--content-type", "text/csv", "--accept", "text/csv", "--max-concurrent", "3", env=s3_env)
    assert proc.returncode == 0, proc.stderr
    assert s3_keys(s3, bucket) == {*files, "out/a.csv.out", "out/b.csv.out", "out/sub/c.csv.out"}
    assert s3_bytes(s3, bucket, "out/a.csv.out").decode() == files["in/a.csv"].upper()
    assert s3_bytes(s3, bucket, "out/b.csv.out") == b"X,1\nY,2\nZ,3\n"
    assert s3_bytes(s3, bucket, "out/sub/c.csv.out") == b"ONLY\n"
    # MaxPayloadInMB=1 came from /execution-parameters: a.csv's 5 records went as 3 + 2
    a_bodies = sorted(len(body.splitlines()) for body, _, _ in recorder.seen if body.startswith(b"0") or
                      body.startswith(b"3"))  # type: ignore[attr-defined]
    assert a_bodies == [2, 3]
    assert len(recorder.seen) == 4  # type: ignore[attr-defined]
    assert {(ct, acc) for _, ct, acc in recorder.seen} == {("text/csv", "text/csv")}  # type: ignore[attr-defined]
    assert recorder.most > 1  # type: ignore[attr-defined]  # --max-concurrent 3 beat the server's 1
    assert "4 request(s) (MultiRecord, MaxPayloadInMB=1, MaxConcurrentTransforms=3)" in proc.stderr


def test_single_record_failure_names_file_and_line(tmp_path: Path, recorder: ThreadingHTTPServer) -> None:
    write_script(tmp_path / "in", "fine\nalso fine\nboom here\nlast\n", "b.txt")
    write_script(tmp_path / "in", "ok\n", "a.txt")
    out = tmp_path / "out"
    proc = toolkit("local", "transform", "--endpoint", url(recorder), "--input", str(tmp_path / "in"),
                   "--output-path", str(out), "--split-type", "Line", "--batch-strategy", "SingleRecord")
    assert proc.returncode == 1
    assert "failed: input b.txt, line 3: HTTP 400: cannot parse boom" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.txt.out"]
    assert (out / "a.txt.out").read_bytes() == b"OK\n"
    assert len(recorder.seen) == 5  # type: ignore[attr-defined]  # one request per record, none without /ping


def test_whole_file_over_the_payload_limit(tmp_path: Path, recorder: ThreadingHTTPServer) -> None:
    write_script(tmp_path / "in", "x" * (2 * 1024 * 1024), "big.bin")
    proc = toolkit("local", "transform", "--endpoint", url(recorder), "--input", str(tmp_path / "in"),
                   "--output-path", str(tmp_path / "out"), "--max-payload", "1")
    assert proc.returncode == 1
    assert "input big.bin: the whole file (SplitType None) is 2097152 bytes, over MaxPayloadInMB=1" in proc.stderr
    assert recorder.seen == []  # type: ignore[attr-defined]


def test_transform_needs_model_or_endpoint(tmp_path: Path) -> None:
    proc = toolkit("local", "transform", "--input", str(tmp_path), "--output-path", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("toolkit local transform: give either --model (a server is started for the "
                                   "job) or --endpoint URL")


INFERENCE = """
import os

def model_fn(model_dir):
    return int(open(os.path.join(model_dir, "factor")).read())

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"{int(line) * model}\\n" for line in text.splitlines() if line.strip())
"""


@pytest.fixture
def model_tarball(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("factor", "10"), ("code/inference.py", INFERENCE)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_transform_with_the_real_serve(tmp_path: Path, model_tarball: Path) -> None:
    for name, numbers in (("a.txt", range(1, 6)), ("b.txt", range(10, 13)), ("c.txt", [7])):
        write_script(tmp_path / "in", "".join(f"{n}\n" for n in numbers), name)
    out = tmp_path / "out"
    proc = toolkit("local", "transform", "--model", str(model_tarball), "--input", str(tmp_path / "in"),
                   "--output-path", f"file://{out}", "--split-type", "Line", "--content-type", "text/plain",
                   "--assemble-with", "Line", "--max-payload", "1", "--environment",
                   "SAGEMAKER_MODEL_SERVER_WORKERS=1", "--workdir", str(tmp_path / "work"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / "a.txt.out").read_text() == "10\n20\n30\n40\n50\n"
    assert (out / "b.txt.out").read_text() == "100\n110\n120\n"
    assert (out / "c.txt.out").read_text() == "70\n"
    assert "3 request(s) (MultiRecord, MaxPayloadInMB=1" in proc.stderr


def test_serve_a_model_until_sigterm(tmp_path: Path, model_tarball: Path) -> None:
    with local_serve(str(model_tarball), "--job-name", "endpoint-1", "--workdir", str(tmp_path / "work")) as port:
        assert invoke(port, b"4\n5\n", "text/plain") == (200, b"40\n50\n")
        assert (tmp_path / "work/endpoint-1/model/factor").read_text() == "10"
