"""Idle and slow connections against the real ``serve`` (2 workers): /ping and /invocations are
answered while they are open, new connections keep being accepted, and the time a connection may sit
idle or trickle its headers or body is bounded (408, then closed). Raw sockets throughout."""

from __future__ import annotations

import http.client
import json
import resource
import select
import socket
import time
from typing import Callable

import pytest
from serving import serving_helpers
from serving.serving_helpers import ECHO, Server

start_server = serving_helpers.start_server  # the fixture


def allow_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_idle(server: Server, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(count)]


def answered_within(call: Callable[[], int], seconds: float) -> int:
    """The status ``call`` got, asserting it took less than ``seconds``."""
    started = time.perf_counter()
    status = call()
    took = time.perf_counter() - started
    assert took < seconds, f"answered {status} after {took:.2f} s"
    return status


def ping(server: Server) -> int:
    return server.request("GET", "/ping", timeout=10).status  # main: no answer while they stay open


def invoke(server: Server) -> int:
    resp = server.invoke(json.dumps({"x": 1}))
    assert resp.status != 200 or resp.json() == {"x": 1}
    return resp.status


def ask_on(sock: socket.socket) -> bytes:
    """A request on an already open (idle) raw connection; the answer's status line."""
    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock.recv(4096).split(b"\r\n", 1)[0]


def test_ping_and_invocations_are_answered_with_1000_idle_connections_open(start_server) -> None:
    allow_open_files(1200)
    server: Server = start_server(ECHO)
    idle = open_idle(server, 1000)  # at once, as a flood would; each sends nothing
    try:
        assert answered_within(lambda: ping(server), 5.0) == 200
        for _ in range(10):  # new connections keep being accepted and answered at once
            assert answered_within(lambda: ping(server), 2.0) == 200
            assert answered_within(lambda: invoke(server), 2.0) == 200
        # the idle connections were accepted and kept, not dropped to make room
        for sock in (idle[0], idle[499], idle[-1]):
            assert ask_on(sock) == b"HTTP/1.1 200 OK"
    finally:
        for sock in idle:
            sock.close()


def test_80_idle_connections_do_not_delay_the_first_ping(start_server) -> None:
    server: Server = start_server(ECHO)
    idle = open_idle(server, 80)
    try:
        # main: about 4 s (new connections were accepted at ~19 a second)
        assert answered_within(lambda: ping(server), 2.0) == 200
    finally:
        for sock in idle:
            sock.close()


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return received


@pytest.fixture
def strict_server(start_server) -> Server:
    """A server with short bounds (1 s for headers and for a body, 2 s idle)."""
    return start_server(ECHO, TOOLKIT_HEADER_SECONDS="1", TOOLKIT_BODY_SECONDS="1", TOOLKIT_IDLE_SECONDS="2")


def test_slowloris_headers_and_slow_bodies_get_408_and_are_closed(strict_server: Server) -> None:
    server = strict_server
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    firsts = {"headers": head, "body": head + b"Content-Length: 1000\r\n\r\n["}
    slow = {socket.create_connection(("127.0.0.1", server.port), timeout=5): what
            for what in ("headers", "body") for _ in range(30)}
    answers: dict[socket.socket, bytes] = {}
    started = time.monotonic()
    for sock, what in slow.items():
        sock.sendall(firsts[what])
    try:
        # a byte per connection every 0.2 s (each would reset a plain idle timeout), while /ping and
        # /invocations are answered; a connection that was answered gets no more bytes
        deadline = started + 10  # 1 s allowed, checked every second: generous on a busy machine
        while len(answers) < len(slow) and time.monotonic() < deadline:
            waiting = [sock for sock in slow if sock not in answers]
            readable, _, _ = select.select(waiting, [], [], 0)
            for sock in waiting:
                if sock in readable:
                    answers[sock] = read_until_closed(sock, deadline)
                else:
                    sock.send(b"X" if slow[sock] == "headers" else b"1")
            assert answered_within(lambda: ping(server), 2.0) == 200
            time.sleep(0.2)
        assert invoke(server) == 200
        assert len(answers) == len(slow), f"{len(slow) - len(answers)} connections still open after 10 s"
        for sock, answer in answers.items():
            assert answer.startswith(b"HTTP/1.1 408 "), (slow[sock], answer[:200])
            message = json.loads(answer.partition(b"\r\n\r\n")[2])["message"]
            setting = "TOOLKIT_HEADER_SECONDS" if slow[sock] == "headers" else "TOOLKIT_BODY_SECONDS"
            assert setting in message, message
    finally:
        for sock in slow:
            sock.close()


def test_idle_connections_are_closed_after_the_idle_bound(strict_server: Server) -> None:
    server = strict_server
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # never sends a byte
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)  # kept alive after a request
    kept.request("GET", "/ping")
    assert kept.getresponse().read() == b""
    started = time.monotonic()
    try:
        assert read_until_closed(silent, started + 10) == b""
        assert kept.sock is not None and read_until_closed(kept.sock, started + 10) == b""
        assert 1.0 < time.monotonic() - started < 10, "closed too early or not at all"
        assert ping(server) == 200
    finally:
        silent.close()
        kept.close()
