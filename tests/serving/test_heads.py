"""Parsed request heads are remembered by their bytes (toolkit.serving.connections.Parser): a request
whose head was seen before must come out exactly as waitress's own parser makes it, and a head that
differs in one byte is parsed anew. Differential against waitress's HTTPRequestParser, then against a
real ``serve``."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace
from typing import Any

import pytest
import serving_helpers
from serving_helpers import ECHO, Server, read_responses
from waitress.adjustments import Adjustments
from waitress.parser import HTTPRequestParser
from waitress.task import WSGITask

from toolkit.serving.connections import HEADS, OneSendTask, Parser

echo_server = serving_helpers.echo_server  # the fixture

BODY = b'{"inputs": [1, 2, 3]}'
# Heads in the styles clients send, and the cases waitress's parser treats apart
REQUESTS = [
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n" + BODY,
    b"POST /invocations?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nContent-Length: 21\r\nAccept: text/csv\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.0\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.1\r\nConnection: close\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /invocations HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\nX_B: dropped\r\nContent-Length: 21\r\n\r\n" + BODY,
    b"POST /models/m1/invoke HTTP/1.1\r\nX-Amzn-SageMaker-Custom-Attributes: k=v\r\nContent-Length: 21\r\n\r\n"
    + BODY,
    b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET //ping HTTP/1.1\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n15\r\n" + BODY + b"\r\n0\r\n\r\n",
    b"POST /invocations HTTP/1.1\r\nContent-Length: abc\r\n\r\n",  # 400
    b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",  # 501
    b"POST /invocations HTTP/1.1\r\nBad Header\r\n\r\n",  # 400
    b"GARBAGE\r\n\r\n",  # 400
]


def _channel(port: int = 50123) -> Any:
    limits = SimpleNamespace(max_body=None, too_large=lambda size: "too large", header_seconds=0, body_seconds=0)
    server = SimpleNamespace(effective_port=8080, server_name="algo-1", adj=Adjustments(ident="sagemaker-toolkit"))
    return SimpleNamespace(heads={}, limits=limits, discard=lambda unread: None, addr=("127.0.0.1", port),
                           server=server, adj=server.adj, check_client_disconnected=lambda: False)


def _parse(parser: Any, raw: bytes) -> dict:
    """Feed ``raw`` as a server does (in pieces until complete) and say what came out."""
    data = raw
    while data and not parser.completed:
        data = data[parser.received(data):]
    body = parser.get_body_stream().read() if parser.error is None else None
    seen = {name: value for name, value in vars(parser).items() if name not in ("adj", "channel", "body_rcv", "known")}
    seen["error"] = type(parser.error).__name__ if parser.error is not None else None
    seen["body"] = body
    return seen


def _ours(adj: Adjustments, channel: Any) -> Parser:
    parser = Parser(adj)
    parser.channel = channel
    return parser


@pytest.mark.parametrize("raw", REQUESTS, ids=range(len(REQUESTS)))
def test_a_remembered_head_parses_as_waitress_parses_it(raw: bytes) -> None:
    adj = Adjustments()
    channel = _channel()
    theirs = _parse(HTTPRequestParser(adj), raw)
    first = _parse(_ours(adj, channel), raw)
    again = _parse(_ours(adj, channel), raw)  # from memory, when its head may be remembered
    assert first == theirs
    assert again == theirs


def _environ(task_class: type, channel: Any, parser: Any, raw: bytes) -> dict:
    _parse(parser, raw.replace(BODY, b'{"inputs": [7, 8, 9]}'))  # (the same length: the same head)
    environ = task_class(channel, parser).get_environment()
    seen = dict(environ)
    seen["wsgi.input"] = environ["wsgi.input"].read()
    seen["waitress.client_disconnected"] = environ["waitress.client_disconnected"]()
    return seen


@pytest.mark.parametrize("raw", [r for r in REQUESTS if HTTPRequestParser(Adjustments()).received(r) and
                                 _parse(HTTPRequestParser(Adjustments()), r)["error"] is None],
                         ids=lambda raw: raw.split(b"\r\n", 1)[0].decode()[:40])
def test_a_remembered_heads_environ_is_the_one_waitress_makes(raw: bytes) -> None:
    adj = Adjustments()
    channel = _channel()
    theirs = _environ(WSGITask, channel, HTTPRequestParser(adj), raw)
    first = _environ(OneSendTask, channel, _ours(adj, channel), raw)
    other = _channel(port=50999)  # another connection: its own address, the same server's memory
    other.heads = channel.heads
    again = _environ(OneSendTask, other, _ours(adj, other), raw)
    assert first == theirs
    assert again == {**theirs, "REMOTE_PORT": "50999"}


def test_each_request_gets_its_own_headers_and_body() -> None:
    adj = Adjustments()
    channel = _channel()
    one, two = _ours(adj, channel), _ours(adj, channel)
    _parse(one, REQUESTS[0])
    second = _parse(two, REQUESTS[0].replace(b"[1, 2, 3]", b"[4, 5, 6]"))
    one.headers["CONTENT_TYPE"] = "changed by the first request's app"
    assert two.headers["CONTENT_TYPE"] == "application/json"
    assert second["body"] == b'{"inputs": [4, 5, 6]}'
    assert len(channel.heads) == 1  # one head, remembered once


def test_the_memory_is_bounded() -> None:
    adj = Adjustments()
    channel = _channel()
    for n in range(HEADS * 3):
        _parse(_ours(adj, channel), b"GET /ping?n=%d HTTP/1.1\r\n\r\n" % n)
        assert len(channel.heads) <= HEADS
    long = b"GET /ping HTTP/1.1\r\nX-Long: " + b"a" * 4000 + b"\r\n\r\n"
    _parse(_ours(adj, channel), long)
    assert long.split(b"\r\n\r\n")[0] not in channel.heads


def test_requests_with_one_head_and_different_bodies_are_answered_apart(echo_server: Server) -> None:
    # the same head bytes (same length of body) on one connection, pipelined: each its own echo
    bodies = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    wire = b"".join(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 9\r\n\r\n" + json.dumps(body).encode()
                    for body in bodies for _ in range(2))
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=30) as sock:
        sock.sendall(wire)
        answers = read_responses(sock, 6)
    assert [(status, json.loads(body)) for status, body in answers] == [(200, b) for b in bodies for _ in range(2)]
    # one byte of the head different: its own Accept is honoured
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=30) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Accept: text/csv\r\nContent-Length: 9\r\n\r\n[1,2,3]  ")
        (status, body), = read_responses(sock, 1)
    assert (status, body.strip()) == (200, b"1\n2\n3")


assert ECHO  # (the echo model the fixture serves)
