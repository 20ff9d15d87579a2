"""The process model, seen from outside: time limit (504), a worker that segfaults, SIGTERM with a
request in flight, PID 1 reaping, and bad configuration."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import serving_helpers
from serving_helpers import BIN, Server, clean_environ, free_port

start_server = serving_helpers.start_server  # the fixture

TROUBLE = """
    import ctypes
    import os
    import signal
    import subprocess
    import threading
    import time

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        action = data.get("action")
        if action == "hang":
            time.sleep(data.get("seconds", 60))
        elif action == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV, the whole worker dies
        elif action == "freeze":
            # in a moment the whole worker is stopped: it can no longer act on SIGTERM
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGSTOP)).start()
        elif action == "orphan":
            # a grandchild whose parent exits at once: it is re-parented to PID 1, which must reap it
            subprocess.Popen(["sh", "-c", "sleep 0.2 & exit 0"]).wait()
        return {"pid": os.getpid()}
"""


def test_hanging_handler_gets_504_and_the_worker_keeps_serving(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_TIMEOUT="1", SAGEMAKER_MODEL_SERVER_WORKERS="1",
                                  TOOLKIT_SERVER_THREADS="1")
    started = time.monotonic()
    resp = server.invoke('{"action": "hang"}')
    took = time.monotonic() - started
    assert resp.status == 504, resp
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in resp.json()["message"]
    assert 0.9 < took < 10
    # more hangs than threads: capacity is replaced, normal requests still get through at once
    assert server.invoke('{"action": "hang"}').status == 504
    assert server.invoke('{"action": "none"}').status == 200
    # more than 2 x threads stuck at once: the worker is replaced by a fresh one
    pid = server.invoke('{"action": "none"}').json()["pid"]
    assert server.invoke('{"action": "hang"}').status == 504
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the old worker may answer a moment longer while it stops
        try:
            resp = server.invoke('{"action": "none"}')
        except OSError:
            continue
        if resp.status == 200 and resp.json()["pid"] != pid:
            break
        time.sleep(0.05)
    assert resp.status == 200 and resp.json()["pid"] != pid, server.log
    assert "asking to be replaced" in server.log


def test_with_no_worker_alive_the_supervisor_answers_503(start_server) -> None:
    crashing = "import os\n\ndef model_fn(model_dir):\n    os._exit(3)\n"
    server: Server = start_server(crashing, wait=False, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            resp = server.request("GET", "/ping", timeout=2)
        except OSError:
            continue
        if b"no model server worker is running" in resp.body:
            break
    assert resp.status == 503 and "no model server worker is running" in resp.json()["message"]
    assert "exited with code 3" in server.log


def test_segfaulting_worker_is_replaced_and_ping_recovers_within_2s(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    old = server.invoke('{"action": "none"}').json()["pid"]
    try:
        server.invoke('{"action": "segfault"}')
    except (ConnectionError, OSError):
        pass  # the worker died mid-request
    crashed = time.monotonic()
    while server.ping() != 200:
        assert time.monotonic() - crashed < 2.0, server.log
        time.sleep(0.02)
    new = server.invoke('{"action": "none"}').json()["pid"]
    assert new != old
    assert f"worker {old} killed by SIGSEGV" in server.log
    assert server.proc.poll() is None


def test_sigterm_finishes_the_request_in_flight_then_exits(start_server) -> None:
    server: Server = start_server(TROUBLE)
    result = {}

    def slow() -> None:
        result["resp"] = server.invoke('{"action": "hang", "seconds": 2}')

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)  # the request is in the handler now
    stopped = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with socket.socket() as probe:  # no longer accepting
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0
    thread.join(10)
    assert result["resp"].status == 200
    assert server.proc.wait(30) == 0
    assert time.monotonic() - stopped < 30
    assert "received SIGTERM" in server.log


def test_a_worker_that_cannot_stop_is_killed_at_the_deadline(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_SERVE_STOP_SECONDS="2")
    assert server.invoke('{"action": "freeze"}').status == 200
    time.sleep(0.5)
    stopped = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert 1.5 < time.monotonic() - stopped < 6
    assert "still running 2 s after SIGTERM: SIGKILL" in server.log


def test_a_request_that_never_ends_does_not_hold_up_the_stop(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_TIMEOUT="0", TOOLKIT_SERVE_STOP_SECONDS="3")
    def never_answered() -> None:
        try:
            server.invoke('{"action": "hang", "seconds": 60}')
        except OSError:
            pass  # the worker gave up on it when the stop deadline came

    thread = threading.Thread(target=never_answered, daemon=True)
    thread.start()
    time.sleep(0.5)
    stopped = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert time.monotonic() - stopped < 5


def test_as_pid_1_orphans_are_reaped(tmp_path) -> None:
    base = tmp_path / "ml"
    serving_helpers.write_model(base, TROUBLE)
    port = free_port()
    env = clean_environ(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(port),
                        TOOLKIT_BIND_HOST="127.0.0.1", SAGEMAKER_MODEL_SERVER_WORKERS="1")
    # a new PID namespace makes serve PID 1, as in a container
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(BIN / "serve")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(base, port, proc, tmp_path / "none.log")
    supervisor = 0
    try:
        deadline = time.monotonic() + 30
        while server.ping() != 200:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(3):
            assert server.invoke('{"action": "orphan"}').status == 200
        time.sleep(1.0)  # the orphaned sleeps have ended by now
        supervisor = int(subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True,
                                        text=True).stdout.split()[0])
        zombies = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if stat[0] == "Z" and int(stat[1]) == supervisor:
                    zombies.append(pid)
        assert zombies == []
    finally:
        if supervisor:
            os.kill(supervisor, signal.SIGTERM)  # unshare itself does not forward signals
        try:
            proc.wait(30)
        finally:
            proc.kill()


def test_bad_port_variable_is_a_one_line_error_with_exit_2() -> None:
    env = clean_environ(SAGEMAKER_BIND_TO_PORT="eighty", SAGEMAKER_BASE_DIR="/nonexistent")
    out = subprocess.run([str(BIN / "serve")], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "SAGEMAKER_BIND_TO_PORT='eighty' is not a whole number" in out.stderr
    assert "Traceback" not in out.stderr


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_environ(SAGEMAKER_BIND_TO_PORT=str(port), TOOLKIT_BIND_HOST="127.0.0.1",
                            SAGEMAKER_BASE_DIR=str(tmp_path))
        out = subprocess.run([str(BIN / "serve")], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "SAGEMAKER_BIND_TO_PORT" in out.stderr
