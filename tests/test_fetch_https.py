"""The https fetcher, end to end: the real ``train`` script downloading from a real HTTP server on
127.0.0.1 (tarballs, a zip, a single script, server errors, a dropped connection, Basic auth)."""

from __future__ import annotations

import base64
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from archives import HOSTILE, good, good_zip
from helpers import Job

SCRIPT = b"print('single https script ran')\n"


class Files(BaseHTTPRequestHandler):
    """Serves fixed bodies by path; counts requests so a test can see retries happen."""

    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", length: int | None = None, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.hits[path] = self.hits.get(path, 0) + 1
        n = self.hits[path]
        if path == "/code/sourcedir.tar.gz":
            self.reply(200, good(), Content_Type="application/gzip")
        elif path == "/code/sourcedir.zip":
            self.reply(200, good_zip())
        elif path == "/code/train.py":
            self.reply(200, SCRIPT, Content_Type="text/x-python")
        elif path == "/flaky/sourcedir.tar.gz":
            self.reply(503, b"busy") if n <= 2 else self.reply(200, good())
        elif path == "/dropped/sourcedir.tar.gz":
            data = good({"data.bin": bytes(300_000)})
            self.reply(200, data[: len(data) // 2], length=len(data))  # then the connection closes
            self.close_connection = True
        elif path == "/bad/sourcedir.tar.gz":
            self.reply(200, HOSTILE["symlink_etc"][0])
        elif path == "/bad/truncated.tar.gz":
            self.reply(200, HOSTILE["truncated_gzip"][0])
        elif path == "/private/sourcedir.tar.gz":
            expected = "Basic " + base64.b64encode(b"me:p%ss").decode()
            if self.headers.get("Authorization") != expected:
                self.reply(401, WWW_Authenticate='Basic realm="code"')
            else:
                self.reply(200, good())
        else:
            self.reply(404, b"not here")


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[str, dict[str, int]]]:
    handler = type("Handler", (Files,), {"hits": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()


def run(job: Job, uri: str, **env: str) -> subprocess.CompletedProcess:
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": uri}).resources()
    return job.run(**env)


def failed(job: Job, proc: subprocess.CompletedProcess, fragment: str) -> str:
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    failure = job.failure.read_text()
    assert fragment in failure and "\n" not in failure and "Traceback" not in proc.stderr
    assert not job.code.exists()
    assert not [p for p in job.base.iterdir() if "partial" in p.name]
    return failure


@pytest.mark.parametrize("name", ["sourcedir.tar.gz", "sourcedir.zip"])
def test_archive_is_streamed_into_the_code_folder(job: Job, http: tuple, name: str) -> None:
    proc = run(job, f"{http[0]}/code/{name}")
    assert proc.returncode == 0, proc.stderr
    assert "remote code ran from " + str(job.code) in proc.stdout
    assert (job.code / "pkg" / "helper.py").read_text() == "VALUE = 42\n"


def test_single_script(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/code/train.py")
    assert proc.returncode == 0, proc.stderr
    assert "single https script ran" in proc.stdout
    assert [p.name for p in job.code.iterdir()] == ["train.py"]


def test_server_errors_are_retried(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/flaky/sourcedir.tar.gz")
    assert proc.returncode == 0, proc.stderr
    assert http[1]["/flaky/sourcedir.tar.gz"] == 3
    assert proc.stderr.count("HTTP Error 503") == 2 and "attempt 3 of 4" in proc.stderr


def test_dropped_connection_is_retried_then_reported(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/dropped/sourcedir.tar.gz", TOOLKIT_FETCH_ATTEMPTS="2")
    failed(job, proc, "/dropped/sourcedir.tar.gz: download failed: ConnectionError: connection closed after")
    assert http[1]["/dropped/sourcedir.tar.gz"] == 2


def test_not_found(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/nothing/sourcedir.tar.gz")
    failed(job, proc, "/nothing/sourcedir.tar.gz: HTTP 404: not found")


def test_hostile_and_truncated_archives(job: Job, make_job, http: tuple) -> None:
    failed(job, run(job, f"{http[0]}/bad/sourcedir.tar.gz"), "symlink 'etc' -> '/etc' points outside")
    other = make_job("other")
    failed(other, run(other, f"{http[0]}/bad/truncated.tar.gz"), "corrupt or truncated")


def test_basic_auth_from_the_url_is_sent_and_masked(job: Job, make_job, http: tuple) -> None:
    host = http[0].removeprefix("http://")
    proc = run(job, f"http://me:p%25ss@{host}/private/sourcedir.tar.gz")
    assert proc.returncode == 0, proc.stderr
    other = make_job("other")
    failure = failed(other, run(other, f"http://me:wrong@{host}/private/sourcedir.tar.gz"), "HTTP 401")
    assert "wrong" not in failure and "me:******@" in failure
