"""A stop (SIGTERM) at any step of `train`'s start-up ends it within the grace time, with the
failure file naming the step and exit 128+N, as PID 1 too; and nothing is left in $TMPDIR.
Real `train`/`serve` processes, a real pip against a real (silent) index, a real HTTP server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from helpers import BIN, Job, clean_environ, free_port

AS_PID_1 = os.geteuid() == 0 and Path("/usr/bin/unshare").exists()


def start(job: Job, pid1: bool, **extra: str) -> subprocess.Popen:
    argv = [str(BIN / "train")]
    if pid1:
        argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *argv]
    return subprocess.Popen(argv, env=job.environ(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def train_pid(proc: subprocess.Popen, pid1: bool) -> int:
    """The PID (in our namespace) of `train`: unshare's child when it runs as PID 1."""
    if not pid1:
        return proc.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("unshare started no child")


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:  # keep reading, so that `train` never blocks on a full stderr pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return "".join(seen)
    raise AssertionError(f"{needle!r} never appeared:\n{''.join(seen)[-2000:]}")


def stop_and_time(proc: subprocess.Popen, pid1: bool) -> None:
    """SIGTERM to `train`: it must exit with 128+15 well within the grace time."""
    stopped_at = time.monotonic()
    os.kill(train_pid(proc, pid1), signal.SIGTERM)
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    assert time.monotonic() - stopped_at < 10


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry))
    return found


@pytest.fixture
def silent_index() -> Iterator[str]:
    """A package index that accepts connections and never answers: pip waits on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(50)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    sock.close()


MODES = [pytest.param(False, id="child"),
         pytest.param(True, id="pid1", marks=pytest.mark.skipif(not AS_PID_1, reason="needs root and unshare"))]


@pytest.mark.parametrize("pid1", MODES)
def test_sigterm_during_pip_install(job: Job, silent_index: str, pid1: bool) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("requirements.txt", "toolkit-no-such-package-xyz\n")
    job.script("train.py", "")
    proc = start(job, pid1, PIP_INDEX_URL=silent_index, PIP_TIMEOUT="60", PIP_RETRIES="0",
                 TOOLKIT_STOP_GRACE_SECONDS="5")
    try:
        wait_for_line(proc, "installing")
        deadline = time.monotonic() + 20
        while not processes_mentioning(str(job.code / "requirements.txt")):  # pip is running
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop_and_time(proc, pid1)
    finally:
        proc.kill()
        proc.wait()
    assert job.failure.read_text() == "stopped by SIGTERM during install dependencies (the job did not start)"
    assert not job.success.exists()
    time.sleep(0.2)
    assert processes_mentioning(str(job.code / "requirements.txt")) == []  # pip did not outlive train


class Trickle(BaseHTTPRequestHandler):
    """Sends the headers of a large archive and then a byte now and then, until told to stop."""

    requested = threading.Event()
    stop = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(b"\x1f\x8b\x08\x00" + bytes(600))
        self.wfile.flush()
        Trickle.requested.set()
        while not Trickle.stop.wait(0.2):
            try:
                self.wfile.write(b"\x00")
                self.wfile.flush()
            except OSError:
                return


@pytest.fixture
def trickle() -> Iterator[str]:
    Trickle.requested.clear()
    Trickle.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/code.tar.gz"
    Trickle.stop.set()
    server.shutdown()


@pytest.mark.parametrize("pid1", MODES)
def test_sigterm_during_a_code_download(job: Job, trickle: str, pid1: bool) -> None:
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": trickle}).resources()
    proc = start(job, pid1)
    threading.Thread(target=proc.communicate, daemon=True).start()  # drain the pipes
    try:
        assert Trickle.requested.wait(30)
        time.sleep(0.3)
        stop_and_time(proc, pid1)
    finally:
        proc.kill()
        proc.wait()
    assert job.failure.read_text() == "stopped by SIGTERM during fetch code (the job did not start)"
    assert not job.code.exists()
    assert not [p for p in job.base.iterdir() if p.name.startswith(".code.partial")]


@pytest.mark.parametrize("pid1", MODES)
def test_sigterm_during_the_job_is_reported_as_a_stop(job: Job, pid1: bool) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import os, time\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'ready'), 'w')\n"
               "time.sleep(60)\n")
    proc = start(job, pid1)
    threading.Thread(target=proc.communicate, daemon=True).start()  # drain the pipes
    try:
        deadline = time.monotonic() + 30
        while not (job.model / "ready").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(train_pid(proc, pid1), signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    lines = job.failure.read_text().splitlines()
    assert lines[0] == "stopped by SIGTERM during run"
    assert "Exit code: 143" in lines


# --- $TMPDIR is left as it was ---------------------------------------------------------------


def source_tar(tmp_path: Path, name: str, text: str) -> Path:
    script = tmp_path / name
    script.write_text(text)
    path = tmp_path / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(script, name)
    return path


@pytest.mark.parametrize("body, code", [("print('ok')\n", 0), ("raise SystemExit(5)\n", 5)])
def test_baked_code_and_a_submit_directory_leave_nothing_in_tmpdir(job: Job, tmp_path: Path, body: str,
                                                                    code: int) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    src = source_tar(tmp_path, "train.py", body)
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": f"file://{src}"})
    job.resources()
    job.script("train.py", "raise SystemExit('the baked code should not run')\n")
    result = job.run(TMPDIR=str(tmpdir))
    assert result.returncode == code, result.stderr
    assert list(tmpdir.iterdir()) == []


def test_serve_with_a_submit_directory_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    src = source_tar(tmp_path, "inference.py", "def model_fn(d):\n    return 1\n"
                     "def predict_fn(x, m):\n    return x\n")
    port = free_port()
    env = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path / "ml"), SAGEMAKER_BIND_TO_PORT=str(port), TMPDIR=str(tmpdir),
                        SAGEMAKER_SUBMIT_DIRECTORY=str(src), SAGEMAKER_MODEL_SERVER_WORKERS="1")
    (tmp_path / "ml" / "model").mkdir(parents=True)
    proc = subprocess.Popen([str(BIN / "serve")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert [p.name[:14] for p in tmpdir.iterdir()] == ["toolkit-serve-"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        proc.kill()
        proc.wait()
    assert list(tmpdir.iterdir()) == []


def test_serve_that_fails_to_start_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path / "ml"), SAGEMAKER_BIND_TO_PORT=str(free_port()),
                        TMPDIR=str(tmpdir), SAGEMAKER_SUBMIT_DIRECTORY=str(tmp_path / "missing.tar.gz"))
    result = subprocess.run([str(BIN / "serve")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert list(tmpdir.iterdir()) == []
