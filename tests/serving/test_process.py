"""The process model, seen from outside: time limit (504), a worker that segfaults, SIGTERM with a
request in flight, PID 1 reaping, and bad configuration.

No test sleeps and hopes: each waits for the event it needs (a request inside the handler is a file
the handler wrote; a worker stopped is its state in /proc) with a generous deadline, and asserts the
order of what happened, not how fast, so the tests pass on a busy 2-core machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

import serving_helpers
from helpers import wait_for
from serving_helpers import BIN, Response, Server, accepting, clean_environ, free_port, read_responses

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
        elif action == "block":
            # says it is in the handler, then waits for the test to release it (or `seconds`)
            open(data["started"], "w").close()
            deadline = time.monotonic() + data.get("seconds", 120)
            while not os.path.exists(data["release"]) and time.monotonic() < deadline:
                time.sleep(0.01)
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


def blocked_request(server: Server, seconds: float = 120) -> tuple[threading.Thread, dict[str, Any], Path]:
    """A "block" request on a thread, returned once the handler runs it; it answers when the returned
    file is written. The thread's result (or error) lands in the dict."""
    started, release = server.base / f"started-{time.monotonic_ns()}", server.base / f"release-{time.monotonic_ns()}"
    body = json.dumps({"action": "block", "seconds": seconds, "started": str(started), "release": str(release)})
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["resp"] = server.request("POST", "/invocations", body.encode(),
                                            {"Content-Type": "application/json"}, timeout=seconds + 60)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    wait_for(started.exists, 60, "the request to reach the handler")
    return thread, result, release


def process_state(pid: int) -> Optional[str]:
    """R, S, T (stopped), Z... from /proc, or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_hanging_handler_gets_504_and_the_worker_keeps_serving(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_TIMEOUT="1", SAGEMAKER_MODEL_SERVER_WORKERS="1",
                                  TOOLKIT_SERVER_THREADS="1")
    started = time.monotonic()
    resp = server.invoke('{"action": "hang"}')
    took = time.monotonic() - started
    assert resp.status == 504, resp
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in resp.json()["message"]
    assert 0.9 < took < 50  # at the 1 s limit, not when the 60 s handler returns
    # more hangs than threads: capacity is replaced, normal requests still get through at once
    assert server.invoke('{"action": "hang"}').status == 504
    assert server.invoke('{"action": "none"}').status == 200
    # more than 2 x threads stuck at once: the worker is replaced by a fresh one
    pid = server.invoke('{"action": "none"}').json()["pid"]
    assert server.invoke('{"action": "hang"}').status == 504
    deadline = time.monotonic() + 60
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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            resp = server.request("GET", "/ping", timeout=10)
        except OSError:
            continue
        if b"no model server worker is running" in resp.body:
            break
        time.sleep(0.05)
    assert resp.status == 503 and "no model server worker is running" in resp.json()["message"]
    assert "exited with code 3" in server.log


def test_segfaulting_worker_is_replaced_and_ping_recovers(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    old = server.invoke('{"action": "none"}').json()["pid"]
    try:
        server.invoke('{"action": "segfault"}')
    except (ConnectionError, OSError):
        pass  # the worker died mid-request
    wait_for(lambda: process_state(old) is None, 60, f"worker {old} to be gone")
    wait_for(lambda: server.ping() == 200, 60, f"/ping to answer 200 again:\n{server.log}")
    new = server.invoke('{"action": "none"}').json()["pid"]
    assert new != old
    assert f"worker {old} killed by SIGSEGV" in server.log
    assert server.proc.poll() is None


def test_sigterm_finishes_the_request_in_flight_then_exits(start_server) -> None:
    server: Server = start_server(TROUBLE)
    thread, result, release = blocked_request(server)
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not accepting(server.port), 60, "serve to stop accepting connections")
    assert thread.is_alive() and server.proc.poll() is None  # ... while the request is still in the handler
    release.write_text("")
    thread.join(60)
    resp: Response = result["resp"]
    assert resp.status == 200, result
    assert server.proc.wait(60) == 0
    assert "received SIGTERM" in server.log


def test_a_worker_that_cannot_stop_is_killed_at_the_deadline(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_SERVE_STOP_SECONDS="2")
    resp = server.invoke('{"action": "freeze"}')
    assert resp.status == 200
    worker = resp.json()["pid"]
    wait_for(lambda: process_state(worker) == "T", 60, f"worker {worker} to be stopped by SIGSTOP")
    stopped = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    assert time.monotonic() - stopped > 1.5  # it gave the worker its 2 s first ...
    assert "still running 2 s after SIGTERM: SIGKILL" in server.log  # ... then killed it
    assert process_state(worker) is None


def test_a_request_that_never_ends_does_not_hold_up_the_stop(start_server) -> None:
    server: Server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_TIMEOUT="0", TOOLKIT_SERVE_STOP_SECONDS="3")
    thread, result, _ = blocked_request(server, seconds=600)  # never released
    stopped = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(120) == 0  # long before the request's 600 s
    assert time.monotonic() - stopped > 0.9  # the request had its time first (3 s less the 2 s margin)
    thread.join(60)
    assert "error" in result, result  # the worker gave up on it when the stop deadline came


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
        supervisor = int(subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True,
                                        text=True).stdout.split()[0])

        def left() -> list[str]:
            """The supervisor's children that are orphaned sleeps (still running, or zombies) or zombies."""
            found = []
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
                    except (OSError, ValueError):
                        continue
                    name, (state, ppid) = head.split("(", 1)[1], tail.split()[:2]
                    if int(ppid) == supervisor and (state == "Z" or name == "sleep"):
                        found.append(f"{pid} {name} {state}")
            return found

        # the sleeps end after 0.2 s; adopted by PID 1, they must then be reaped, not left as zombies
        wait_for(lambda: not left(), 60, "the orphans to end and be reaped")
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


_BODY = json.dumps({"action": "none"}).encode()
ONE = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
       % (len(_BODY), _BODY))  # one raw request, for the tests that write to the socket themselves


def _segments_in(sock: socket.socket) -> int:
    """TCP segments this socket has received (Linux's tcp_info.tcpi_segs_in, at byte 140)."""
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 140)[0]


def test_a_small_answer_arrives_in_one_tcp_segment(start_server) -> None:
    """Status line, headers and body of a small answer go out in one send (toolkit.serving.connections.
    OneSendTask): waitress alone sends the head and the body apart, two segments and two wake-ups of
    the client per answer. Counted on the client's socket over 30 kept-alive requests (an ACK of its
    own may add a segment now and then; two sends per answer would give 60 or more)."""
    server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        read_responses(sock.sendall(ONE) or sock, 1)  # warm
        before = _segments_in(sock)
        for _ in range(30):
            sock.sendall(ONE)
            assert read_responses(sock, 1)[0][0] == 200
        segments = _segments_in(sock) - before
    assert 30 <= segments < 45, f"{segments} TCP segments for 30 answers"


def test_kept_alive_and_pipelined_requests_never_wait_for_the_event_loop_tick(start_server) -> None:
    """A request thread that has answered does not wake the event loop when the loop has nothing to do
    for the connection (toolkit.serving.connections): it must still wake it whenever it has, or the
    next request waits for the loop's 0.2 s tick. 40 rounds of 3 pipelined requests on one kept-alive
    connection take well under one tick per round."""
    server = start_server(TROUBLE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        read_responses(sock.sendall(ONE) or sock, 1)  # warm
        started = time.monotonic()
        for _ in range(40):
            sock.sendall(ONE * 3)
            answers = read_responses(sock, 3)
            assert [status for status, _ in answers] == [200, 200, 200]
            sock.sendall(ONE)  # and one alone: answered, then the connection polled again
            assert read_responses(sock, 1)[0][0] == 200
        took = time.monotonic() - started
    assert took < 40 * 0.2 / 2, f"{took:.2f} s for 40 rounds: answers waited for the event loop's tick"
