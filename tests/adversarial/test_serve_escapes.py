"""Handlers that escape: ``raise SystemExit`` / ``KeyboardInterrupt`` (BaseException, not Exception)
in user code must be answered like any other exception, and must not cost the worker a thread or
leave it unhealthy. Runs the real ``serve``."""

from __future__ import annotations

import json
import time

from serving import serving_helpers
from serving.serving_helpers import Server

start_server = serving_helpers.start_server  # the fixture

ESCAPING = """
    import sys

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        if data == "exit":
            sys.exit(3)
        if data == "interrupt":
            raise KeyboardInterrupt
        if data == "stream-exit":
            def chunks():
                yield "first "
                raise SystemExit(4)
            return chunks()
        return data
"""


def test_system_exit_and_keyboard_interrupt_in_a_handler_are_500s_and_the_worker_stays(start_server) -> None:
    threads = 2
    server: Server = start_server(ESCAPING, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_SERVER_THREADS=str(threads))
    workers = server.worker_pids()
    # more than the worker has threads (and than the watchdog's 2 x threads): none may be lost
    for _ in range(2 * threads + 2):
        for payload, name in (("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt")):
            resp = server.invoke(json.dumps(payload))
            assert resp.status == 500, resp
            assert resp.headers["content-type"] == "application/json"
            assert name in resp.json()["message"], resp
    assert server.invoke(json.dumps("still here")).json() == "still here"
    assert server.ping() == 200
    assert server.worker_pids() == workers  # the same worker, not a replacement


def test_system_exit_mid_stream_closes_the_connection_instead_of_hanging(start_server) -> None:
    import http.client

    server: Server = start_server(ESCAPING, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/invocations", body=b'"stream-exit"', headers={"Content-Type": "application/json",
                                                                         "Accept": "text/plain"})
    resp = conn.getresponse()
    assert resp.status == 200  # the first chunk was out: only cutting the body short is left
    try:
        body = resp.read()
    except http.client.IncompleteRead as exc:
        body = exc.partial
    else:
        raise AssertionError(f"the stream ended normally: {body!r}")
    finally:
        conn.close()
    assert body == b"first "
    assert server.invoke(json.dumps("ok")).json() == "ok"


def test_system_exit_in_model_fn_is_a_503_naming_it_not_loading_forever(start_server) -> None:
    server: Server = start_server("""
        def model_fn(model_dir):
            raise SystemExit("no GPU here")
    """, wait=False)
    server.wait_ready(status=503)  # listening (loading or failed)
    deadline = time.monotonic() + 20
    while "loading" in (resp := server.invoke("[1]")).json()["message"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resp.status == 503 and "SystemExit" in resp.json()["message"] and "no GPU here" in resp.json()["message"]
    assert server.request("GET", "/ping").json()["message"] == resp.json()["message"]
