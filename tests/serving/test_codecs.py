"""The built-in codecs through real HTTP: every media type, MIME parameters, Accept negotiation,
and bad bodies answered with a 4xx and a one-line JSON message (never a traceback)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import serving_helpers
from serving_helpers import Server

echo_server = serving_helpers.echo_server  # the fixture


def assert_client_error(resp, status: int, *words: str) -> None:
    assert resp.status == status, resp
    assert resp.headers["content-type"] == "application/json"
    message = resp.json()["message"]
    assert "Traceback" not in message and "\n" not in message
    for word in words:
        assert word in message, message


def test_json_round_trip_with_charset(echo_server: Server) -> None:
    body = {"instances": [[1.5, 2], [3, 4]], "name": "é"}
    resp = echo_server.invoke(json.dumps(body), "application/json; charset=utf-8")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == body


def test_missing_or_wildcard_accept_uses_json(echo_server: Server) -> None:
    for accept in (None, "*/*", ""):
        resp = echo_server.invoke("[1, 2]", accept=accept)
        assert resp.status == 200 and resp.headers["content-type"] == "application/json", accept


def test_accept_list_with_q_values_picks_the_best_supported(echo_server: Server) -> None:
    accept = "application/x-unknown, text/csv;q=0.9, application/json;q=0.5"
    resp = echo_server.invoke("[[1, 2], [3, 4]]", accept=accept)
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/csv"
    assert resp.body == b"1,2\n3,4\n"


def test_accept_wildcard_subtype(echo_server: Server) -> None:
    resp = echo_server.invoke('"hello"', accept="text/*")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/")


def test_csv_is_decoded_as_numbers_like_batch_transform_sends_it(echo_server: Server) -> None:
    resp = echo_server.invoke("1,2,3\n4,5,6\n", "text/csv", accept="application/json")
    assert resp.status == 200
    assert resp.json() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_csv_with_text_fields(echo_server: Server) -> None:
    resp = echo_server.invoke("a,1\nb,2\n", "text/csv", accept="application/json")
    assert resp.status == 200
    assert resp.json() == [["a", 1], ["b", 2]]


def test_jsonlines_round_trip(echo_server: Server) -> None:
    resp = echo_server.invoke('{"a": 1}\n\n{"a": 2}\n', "application/jsonlines", accept="application/jsonlines")
    assert resp.status == 200
    assert resp.body == b'{"a": 1}\n{"a": 2}\n'


def test_text_and_octet_stream(echo_server: Server) -> None:
    resp = echo_server.invoke("héllo", "text/plain; charset=utf-8", accept="text/plain")
    assert resp.status == 200 and resp.body.decode() == "héllo"
    raw = bytes(range(256))
    resp = echo_server.invoke(raw, "application/octet-stream", accept="application/octet-stream")
    assert resp.status == 200 and resp.body == raw


def test_npy_round_trip(echo_server: Server) -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    resp = echo_server.invoke(buf.getvalue(), "application/x-npy", accept="application/x-npy")
    assert resp.status == 200
    got = np.load(io.BytesIO(resp.body))
    assert got.dtype == np.float32 and got.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_npz_round_trip(echo_server: Server) -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.array([1, 2]), y=np.array([[3.5]]))
    resp = echo_server.invoke(buf.getvalue(), "application/x-npz", accept="application/json")
    assert resp.status == 200
    assert resp.json() == {"x": [1, 2], "y": [[3.5]]}


def test_invalid_json_is_400(echo_server: Server) -> None:
    assert_client_error(echo_server.invoke('{"a": [1, 2', "application/json"), 400, "not valid JSON")


def test_ragged_csv_is_400(echo_server: Server) -> None:
    resp = echo_server.invoke("1,2,3\n4,5\n", "text/csv")
    assert_client_error(resp, 400, "row 1 has 3", "row 2 has 2")


def test_pickled_npy_is_refused_and_never_loaded(echo_server: Server, tmp_path) -> None:
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    np.save(buf, np.array([Evil()], dtype=object), allow_pickle=True)
    resp = echo_server.invoke(buf.getvalue(), "application/x-npy")
    assert_client_error(resp, 400, "pickled")
    assert not marker.exists()


def test_garbage_npy_is_400(echo_server: Server) -> None:
    assert_client_error(echo_server.invoke(b"not an array", "application/x-npy"), 400, "not an NPY array")


def test_unknown_content_type_is_415_and_lists_the_supported(echo_server: Server) -> None:
    resp = echo_server.invoke("<a/>", "application/xml")
    assert_client_error(resp, 415, "application/xml", "application/json", "text/csv")


def test_missing_content_type_is_415(echo_server: Server) -> None:
    resp = echo_server.request("POST", "/invocations", b"[1]", {})
    assert_client_error(resp, 415)


def test_unsupported_accept_is_406(echo_server: Server) -> None:
    resp = echo_server.invoke("[1]", accept="image/png")
    assert_client_error(resp, 406, "image/png", "application/json")


def test_body_over_the_limit_is_413(echo_server: Server) -> None:
    # the fixture sets SAGEMAKER_MAX_PAYLOAD_IN_MB=1
    resp = echo_server.invoke(b"[" + b"1," * 600_000 + b"1]", "application/json")
    assert_client_error(resp, 413, "SAGEMAKER_MAX_PAYLOAD_IN_MB=1")
    assert echo_server.invoke("[1]").status == 200


def test_chunked_body_is_accepted_and_limited(echo_server: Server) -> None:
    resp = echo_server.post_chunked([b"1,2\n", b"3,4\n"], "text/csv")
    assert resp.status == 200 and resp.json() == [[1, 2], [3, 4]]
    resp = echo_server.post_chunked([b"1,2\n" * 100_000] * 3, "text/csv")  # 1.2 MB > 1 MB
    assert resp.status == 413, resp


@pytest.mark.parametrize("path,method,status,says", [
    ("/invocations", "GET", 405, "GET /invocations: Method Not Allowed; this route accepts POST"),
    ("/ping", "POST", 405, "POST /ping: Method Not Allowed; this route accepts GET"),
    ("/nowhere", "GET", 404, "GET /nowhere: Not Found; routes: GET /ping, POST /invocations"),
])
def test_wrong_route_or_method_is_a_json_4xx(echo_server: Server, path: str, method: str, status: int,
                                             says: str) -> None:
    resp = echo_server.request(method, path, b"" if method == "POST" else None)
    assert resp.status == status, resp
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["message"].startswith(says), resp.json()
    if status == 405:  # the methods the route does take, as HTTP says to name them
        assert says.rsplit(" ", 1)[1] in resp.headers["allow"].split(", "), resp.headers


def test_execution_parameters_defaults(echo_server: Server) -> None:
    resp = echo_server.request("GET", "/execution-parameters")
    assert resp.status == 200
    assert resp.json() == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}


def test_custom_attributes_longer_than_1024_characters_are_400(echo_server: Server) -> None:
    assert echo_server.invoke("[1]", X_Amzn_SageMaker_Custom_Attributes="a" * 1024).status == 200
    resp = echo_server.invoke("[1]", X_Amzn_SageMaker_Custom_Attributes="a" * 1025)
    assert_client_error(resp, 400, "1025 characters", "at most 1024")


def test_binary_output_asked_as_json_is_406(echo_server: Server) -> None:
    resp = echo_server.invoke(b"\xff\xfe", "application/octet-stream", accept="application/json")
    assert_client_error(resp, 406, "application/octet-stream")
