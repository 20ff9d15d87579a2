"""Hostile request bodies against the real ``serve`` (echo model, SAGEMAKER_MAX_PAYLOAD_IN_MB=1):
bodies that do not decode are 400 with a one-line JSON message, never a 500 or a dropped connection,
and nothing a header claims is allocated; a body over the limit is a 413 the client can read
(urllib, urllib3 as boto3 uses it, raw chunked), at the exact boundary."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from serving import serving_helpers
from serving.serving_helpers import Response, Server

echo_server = serving_helpers.echo_server  # the fixture
LIMIT = 1024 * 1024  # the fixture's SAGEMAKER_MAX_PAYLOAD_IN_MB=1


def assert_refused(resp: Response, status: int, *words: str) -> None:
    assert resp.status == status, resp
    assert resp.headers["content-type"] == "application/json", resp.headers
    message = resp.json()["message"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message


def npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def raw_exchange(server: Server, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


# -- bodies that do not decode: 400 -------------------------------------------------------------

HUGE_SHAPE = (10**6, 10**6)  # 8 TB of float64: a MemoryError (500) if numpy tried to allocate it

UNDECODABLE = {
    "json nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json", "recursion"),
    "json object nested too deep": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json", "recursion"),
    "jsonlines nested too deep": (b"[" * 100_000 + b"\n", "application/jsonlines", "recursion"),
    "garbage npz": (b"PK\x03\x04" + b"garbage" * 50, "application/x-npz", "not an NPZ archive"),
    "npz cut in half": (None, "application/x-npz", "not an NPZ archive"),
    "npy header declaring 8 TB": (npy_header(HUGE_SHAPE), "application/x-npy", "declares shape"),
    "npy header declaring more than it carries": (npy_header((1000,)) + b"\0" * 80, "application/x-npy",
                                                  "declares shape"),
    "npz member declaring 8 TB": (zipped({"a.npy": npy_header(HUGE_SHAPE)}), "application/x-npz", "declares shape"),
    "npz deflate bomb (0.8 MB to 800 MB)": (None, "application/x-npz", "expands to"),
    "csv field over csv's limit": (b"a" * 200_000 + b"\n", "text/csv", "not CSV"),
}


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_a_body_that_does_not_decode_is_400(echo_server: Server, case: str) -> None:
    body, content_type, words = UNDECODABLE[case]
    if case == "npz cut in half":
        whole = io.BytesIO()
        np.savez(whole, a=np.arange(100.0))
        body = whole.getvalue()[: len(whole.getvalue()) // 2]
    elif case.startswith("npz deflate bomb"):
        zeros = np.zeros(10**8)  # 800 MB of zeros, deflated to about 0.8 MB
        data = npy_header(zeros.shape) + zeros.tobytes()
        body = zipped({"a.npy": data}, zipfile.ZIP_DEFLATED)
        assert len(body) < LIMIT
    assert_refused(echo_server.invoke(body, content_type), 400, words)
    assert echo_server.ping() == 200


def test_a_valid_npy_and_npz_still_decode(echo_server: Server) -> None:
    array = np.arange(12.0).reshape(3, 4)
    one = io.BytesIO()
    np.save(one, array)
    assert echo_server.invoke(one.getvalue(), "application/x-npy", accept="application/json").json() == array.tolist()
    many = io.BytesIO()
    np.savez_compressed(many, a=array, b=np.zeros((0, 5)))
    resp = echo_server.invoke(many.getvalue(), "application/x-npz", accept="application/x-npz")
    with np.load(io.BytesIO(resp.body)) as answer:
        assert answer["a"].tolist() == array.tolist() and answer["b"].shape == (0, 5)


def test_a_chunk_size_of_18_hex_digits_is_400_not_a_dropped_connection(echo_server: Server) -> None:
    answer = raw_exchange(echo_server, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n[1]\r\n0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"application/json" in head and b"chunk size" in json.loads(body)["message"].encode()
    assert echo_server.ping() == 200


# -- a body over the limit: a 413 the client reads -----------------------------------------------


def urllib_post(server: Server, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/invocations", data=body,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Accept": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("size", [8 * LIMIT, 100 * LIMIT])
def test_urllib_reads_the_413_for_a_body_far_over_the_limit(echo_server: Server, size: int) -> None:
    status, body = urllib_post(echo_server, b"x" * size)  # a reset connection raises URLError here
    assert status == 413, body
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in json.loads(body)["message"]
    assert echo_server.ping() == 200


def test_urllib3_as_boto3_uses_it_reads_the_413(echo_server: Server) -> None:
    import urllib3

    with urllib3.PoolManager(retries=False, timeout=30) as pool:
        resp = pool.request("POST", f"http://127.0.0.1:{echo_server.port}/invocations", body=b"x" * (20 * LIMIT),
                            headers={"Content-Type": "application/octet-stream"})
        assert resp.status == 413, resp.data
        assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in resp.json()["message"]
        # the pool can go on: the next request on a new connection is answered
        resp = pool.request("POST", f"http://127.0.0.1:{echo_server.port}/invocations", body=b"[1]",
                            headers={"Content-Type": "application/json"})
        assert resp.status == 200


def post_chunked(server: Server, chunks: list[bytes]) -> tuple[int, bytes]:
    resp = server.post_chunked(chunks, "application/octet-stream", accept="application/octet-stream")
    return resp.status, resp.body


def test_a_client_expecting_100_continue_gets_the_413_instead_and_sends_nothing(echo_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (50 * LIMIT))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in json.loads(body)["message"]


def test_a_chunked_body_far_over_the_limit_gets_a_readable_413(echo_server: Server) -> None:
    status, body = post_chunked(echo_server, [b"x" * 65536] * 160)  # 10 MB
    assert status == 413, body
    assert "chunked request body is larger" in json.loads(body)["message"]


@pytest.mark.parametrize("size,status", [(LIMIT - 1, 200), (LIMIT, 200), (LIMIT + 1, 413)])
def test_the_limit_at_its_boundary_with_content_length(echo_server: Server, size: int, status: int) -> None:
    answered, body = urllib_post(echo_server, b"x" * size)
    assert answered == status, body[:200]
    if status == 200:
        assert len(body) == size


@pytest.mark.parametrize("size,status", [(LIMIT - 1, 200), (LIMIT, 200), (LIMIT + 1, 413)])
def test_the_limit_at_its_boundary_chunked(echo_server: Server, size: int, status: int) -> None:
    small = [b"y" * 1000] * (size // 1000) + [b"y" * (size % 1000)]  # small chunks: framing is not body
    answered, body = post_chunked(echo_server, [c for c in small if c])
    assert answered == status, body[:200]
    if status == 200:
        assert len(body) == size
