"""Response streaming: handler functions that return generators, served by the real ``serve`` over
HTTP on 127.0.0.1 and read incrementally (raw sockets and http.client)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest
import serving_helpers
from serving_helpers import Server, read_until, write_model

start_server = serving_helpers.start_server  # the fixture

# predict_fn returns a generator; the request says which one. No output_fn: str/bytes chunks are sent
# as they are, other chunks through the codec negotiated from Accept.
STREAMING = """
    import json
    import time

    from toolkit import ClientError


    def model_fn(model_dir):
        return "streamer"


    def tokens(n, delay, marker):
        sent = 0
        try:
            for i in range(n):
                if i:
                    time.sleep(delay)
                yield f"token {i}\\n"
                sent += 1
            if marker:
                open(marker + ".finished", "w").write(str(sent))
        finally:
            if marker:
                open(marker, "w").write(str(sent))


    def objects():
        for i in range(3):
            yield {"i": i, "text": "line one\\nline two" if i == 2 else "x"}


    def fails_after_one():
        yield "one\\n"
        raise ValueError("the tokenizer broke")


    def refuses():
        raise ClientError("the prompt is empty", 400)
        yield "never"


    def predict_fn(data, model):
        mode = data["mode"]
        if mode == "tokens":
            return tokens(data["n"], data["delay"], data.get("marker"))
        if mode == "objects":
            return objects()
        if mode == "fail":
            return fails_after_one()
        return refuses()
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One streaming server (1 s time limit) shared by the module's tests."""
    base = tmp_path_factory.mktemp("streaming")
    write_model(base, STREAMING)
    srv = Server.start(base, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_SERVER_THREADS="4",
                       SAGEMAKER_MODEL_SERVER_TIMEOUT="1").wait_ready()
    yield srv
    srv.stop(timeout=10)


def raw_request(server: Server, payload: dict, accept: str = "text/plain") -> socket.socket:
    body = json.dumps(payload).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Accept: %s\r\nContent-Length: %d\r\n\r\n%s" % (accept.encode(), len(body), body))
    return sock


def wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def test_first_chunk_arrives_before_the_generator_finishes(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "tokens"
    sock = raw_request(server, {"mode": "tokens", "n": 4, "delay": 0.4, "marker": str(marker)})
    with sock:
        head = read_until(sock, b"token 0\n")
        # the generator is still sleeping before its second token: it has not finished
        assert not (tmp_path / "tokens.finished").exists()
        assert b"token 1" not in head
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
        assert b"Content-Type: text/plain" in head
        rest = read_until(sock, b"0\r\n\r\n")  # the last chunk of a chunked body
    assert b"token 3\n" in rest
    assert wait_for(tmp_path / "tokens.finished") == "4"


def test_whole_stream_with_http_client(server: Server) -> None:
    """A stream longer than the 1 s time limit is not cut: the limit applies between chunks."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/invocations", json.dumps({"mode": "tokens", "n": 5, "delay": 0.3}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"".join(b"token %d\n" % i for i in range(5))
    conn.close()


def test_event_stream_frames_each_chunk_as_an_event(server: Server) -> None:
    resp = server.invoke(json.dumps({"mode": "objects"}), accept="text/event-stream")
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    events = resp.body.decode().split("\n\n")
    assert events[-1] == ""
    assert events[0] == 'data: {"i": 0, "text": "x"}'
    assert events[1] == 'data: {"i": 1, "text": "x"}'
    # a JSON chunk has no raw line break; a str chunk with one is sent as two data lines
    assert json.loads(events[2][len("data: "):]) == {"i": 2, "text": "line one\nline two"}


def test_event_stream_with_str_chunks_splits_lines(server: Server) -> None:
    resp = server.invoke(json.dumps({"mode": "tokens", "n": 2, "delay": 0}), accept="text/event-stream")
    assert resp.body == b"data: token 0\ndata: \n\ndata: token 1\ndata: \n\n"


def test_without_event_stream_chunks_are_the_encoded_bytes(server: Server) -> None:
    resp = server.invoke(json.dumps({"mode": "objects"}), accept="application/json")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.body == b'{"i": 0, "text": "x"}{"i": 1, "text": "x"}{"i": 2, "text": "line one\\nline two"}'


def test_client_disconnect_stops_the_generator(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "gone"
    sock = raw_request(server, {"mode": "tokens", "n": 200, "delay": 0.05, "marker": str(marker)})
    read_until(sock, b"token 1\n")
    sock.close()
    sent = int(wait_for(marker))  # the generator's finally ran
    assert sent < 200
    assert not (tmp_path / "gone.finished").exists()


def test_error_before_the_first_chunk_is_an_ordinary_error(server: Server) -> None:
    resp = server.invoke(json.dumps({"mode": "refuse"}))
    assert resp.status == 400
    assert resp.json() == {"message": "the prompt is empty"}


def test_error_mid_stream_cuts_the_body_off(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/invocations", json.dumps({"mode": "fail"}), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200  # the status line was sent with the first chunk
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert info.value.partial == b"one\n"
    conn.close()
    assert "ValueError: the tokenizer broke" in server.log


def test_error_mid_stream_is_an_error_event(server: Server) -> None:
    resp = server.invoke(json.dumps({"mode": "fail"}), accept="text/event-stream")
    assert resp.status == 200
    assert resp.body == (b"data: one\ndata: \n\n"
                         b'event: error\ndata: {"message": "the model\'s handler raised ValueError while '
                         b'streaming: the tokenizer broke"}\n\n')


def test_a_stalled_stream_is_closed_after_the_time_limit(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "stalled"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/invocations", json.dumps({"mode": "tokens", "n": 3, "delay": 2.5, "marker": str(marker)}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert info.value.partial == b"token 0\n"
    conn.close()
    assert wait_for(marker) == "1"  # when it yields again the connection is gone: the generator is closed
    assert "waiting for its next chunk: connection closed" in server.log
    assert server.ping() == 200


OUTPUT_FN = """
    def model_fn(model_dir):
        return None

    def predict_fn(data, model):
        return data["words"]

    def output_fn(prediction, accept):
        for word in prediction:
            yield {"word": word}
"""


def test_output_fn_generator_streams_through_the_codec(start_server) -> None:
    server = start_server(OUTPUT_FN, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    resp = server.invoke(json.dumps({"words": ["a", "b"]}), accept="text/event-stream")
    assert resp.status == 200
    assert resp.body == b'data: {"word": "a"}\n\ndata: {"word": "b"}\n\n'
    resp = server.invoke(json.dumps({"words": ["a"]}), accept="application/json")
    assert resp.headers["content-type"] == "application/json"
    assert resp.body == b'{"word": "a"}'
