"""Dynamic batching, seen from outside: the real `serve` with one worker, requests sent at once from
threads, each answer checked against what its own client sent. Batches are made to close by size
(a wait of seconds that the test never relies on running out), so no timing decides a result."""

from __future__ import annotations

import http.client
import json
import textwrap
import threading
from pathlib import Path
from typing import Optional

import serving_helpers
from helpers import free_port, wait_for
from serving_helpers import Response, Server, launch, scrape_when

start_server = serving_helpers.start_server  # the fixture

RECORDING = """
    import json, os

    max_batch_size = 4
    max_batch_wait_ms = 20000  # never runs out in these tests: batches close when full

    def model_fn(model_dir):
        return "model"

    def input_fn(body, content_type):
        data = json.loads(body)
        if data == "undecodable":
            from toolkit import ClientError
            raise ClientError("cannot read this one", 422)
        return data

    def predict_batch_fn(inputs, model):
        if "boom" in inputs:
            raise ValueError("a row was poisoned")
        with open(os.environ["BATCH_LOG"], "a") as f:  # what the handler saw: one line per call
            f.write(json.dumps(inputs) + "\\n")
        return [{"echo": x, "batch": len(inputs)} for x in inputs]
"""


def send_together(server: Server, bodies: list, headers: Optional[dict] = None, paths: Optional[list] = None,
                  timeout: float = 60) -> list[Response]:
    """POST each body (to its path in ``paths``, else /invocations) from its own thread and connection,
    all at once; the answers in the same order.

    Each connection is opened and answered once (GET /ping) before any body is sent, so the server
    holds them all: a batch closes as soon as every open connection's request is in it."""
    answers: list = [None] * len(bodies)
    ready = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        try:
            conn.request("GET", "/ping")
            conn.getresponse().read()
            ready.wait()
            conn.request("POST", paths[i] if paths else "/invocations", json.dumps(bodies[i]).encode(),
                         {"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            answers[i] = Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def batches(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_concurrent_requests_are_one_batch_and_each_client_gets_its_own_answer(start_server, tmp_path) -> None:
    log, port = tmp_path / "batches.jsonl", free_port()
    server = start_server(RECORDING, SAGEMAKER_MODEL_SERVER_WORKERS="1", BATCH_LOG=str(log),
                          TOOLKIT_METRICS_PORT=str(port))
    answers = send_together(server, ["a", "b", "c", "d"])
    assert [a.status for a in answers] == [200] * 4, answers
    assert [a.json() for a in answers] == [{"echo": x, "batch": 4} for x in "abcd"]  # its own, in a batch of 4
    assert [sorted(b) for b in batches(log)] == [["a", "b", "c", "d"]]  # the handler was called once
    seen = scrape_when(port, {'toolkit_requests_total{model="model",status="200"}': 4})
    assert seen['toolkit_batch_size_count{model="model"}'] == 1
    assert seen['toolkit_batch_size_sum{model="model"}'] == 4
    assert seen['toolkit_batch_queue_seconds_count{model="model"}'] == 4
    assert seen['toolkit_requests_total{model="model",status="200"}'] == 4
    assert "dynamic batching, up to 4 requests per call" in server.log


def test_a_request_waiting_in_a_batch_leaves_the_event_loop_to_the_others(start_server, tmp_path) -> None:
    """The event loop's thread answers requests itself (docs/serving.md#the-event-loop); a request that
    joins a batch is parked (its thread runs the loop on), or the batch's other requests would not be
    read until it ended. The loop's own hand-off of slow requests is put off for a minute here, so only
    parking can fill this batch of 4 within its 20 s wait."""
    log = tmp_path / "batches.jsonl"
    server = start_server(RECORDING, SAGEMAKER_MODEL_SERVER_WORKERS="1", BATCH_LOG=str(log),
                          TOOLKIT_LOOP_HANDOFF_MS="60000")
    answers = send_together(server, ["a", "b", "c", "d"], timeout=15)
    assert [a.json() for a in answers] == [{"echo": x, "batch": 4} for x in "abcd"], answers
    assert [sorted(b) for b in batches(log)] == [["a", "b", "c", "d"]]


def test_a_bad_input_fails_only_its_own_request(start_server, tmp_path) -> None:
    log = tmp_path / "batches.jsonl"
    server = start_server(RECORDING, SAGEMAKER_MODEL_SERVER_WORKERS="1", BATCH_LOG=str(log))
    answers = send_together(server, ["a", "undecodable", "b", "c", "d"])
    assert [a.status for a in answers] == [200, 422, 200, 200, 200], answers
    assert answers[1].json()["message"] == "cannot read this one"
    assert {a.json()["echo"] for a in answers if a.status == 200} == {"a", "b", "c", "d"}
    assert [sorted(b) for b in batches(log)] == [["a", "b", "c", "d"]]


def test_a_batch_call_that_raises_fails_each_request_in_it_with_500(start_server, tmp_path) -> None:
    log = tmp_path / "batches.jsonl"
    server = start_server(RECORDING, SAGEMAKER_MODEL_SERVER_WORKERS="1", BATCH_LOG=str(log))
    answers = send_together(server, ["a", "boom", "b", "c"])
    assert [a.status for a in answers] == [500] * 4, answers
    for answer in answers:
        message = answer.json()["message"]
        assert "ValueError: a row was poisoned" in message and "in a batch of 4 requests" in message
    assert server.log.count("Traceback") == 1  # logged once for the batch, not once per request
    # the model serves on
    assert [a.status for a in send_together(server, ["e", "f", "g", "h"])] == [200] * 4


STACKING = """
    import json, time
    from pathlib import Path
    import numpy as np

    max_batch_size = 3
    max_batch_wait_ms = 20000

    def model_fn(model_dir):
        return "model"

    def input_fn(body, content_type):
        return np.array(json.loads(body), dtype=float)

    def predict_fn(batch, model):  # takes a batch of rows: each output row says how many rows the call had
        if (batch[:, 0] == 99).any():
            time.sleep(4)  # past SAGEMAKER_MODEL_SERVER_TIMEOUT
            Path(__file__).with_name("slow-call-ended").touch()
        return np.concatenate([batch * 2, np.full((len(batch), 1), len(batch))], axis=1)

    def output_fn(prediction, accept):
        return json.dumps(prediction.tolist())
"""


def test_the_default_stacks_arrays_and_gives_each_request_its_own_rows(start_server) -> None:
    server = start_server(STACKING, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    sent = [[[1, 2]], [[3, 4], [5, 6]], [[7, 8], [9, 10], [11, 12]]]
    answers = send_together(server, sent)
    assert [a.status for a in answers] == [200] * 3, answers
    for rows, answer in zip(sent, answers):  # its own rows doubled, from one call on all 6 rows
        assert answer.json() == [[2 * a, 2 * b, 6] for a, b in rows]


def test_a_request_whose_rows_do_not_stack_fails_alone_with_400(start_server) -> None:
    server = start_server(STACKING, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    answers = send_together(server, [[[1, 2]], [[1, 2, 3]], [[5, 6]]])
    assert [a.status for a in answers] == [200, 400, 200], answers
    assert "does not stack" in answers[1].json()["message"]
    assert answers[0].json() == [[2, 4, 2]] and answers[2].json() == [[10, 12, 2]]


def test_the_time_limit_holds_for_each_request_of_a_batch(start_server) -> None:
    server = start_server(STACKING, SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
    answers = send_together(server, [[[99, 0]], [[1, 1]], [[2, 2]]])
    assert [a.status for a in answers] == [504] * 3, answers
    # a call that ran past the limit does not hold the next batch back: this one is answered while
    # the slow call is still running
    marker = server.base / "model" / "code" / "slow-call-ended"
    answers = send_together(server, [[[1, 2]], [[3, 4]], [[5, 6]]])
    assert [a.status for a in answers] == [200] * 3, answers
    assert not marker.exists()
    wait_for(marker.exists, 30, "the slow batch call to end")


STREAMING = """
    max_batch_size = 8

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        for i in range(3):
            yield f"chunk {i};"
"""


def test_a_streaming_model_is_never_batched(start_server) -> None:
    server = start_server(STREAMING, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    answer = server.invoke('"x"', accept="text/plain")
    assert answer.status == 200 and answer.body == b"chunk 0;chunk 1;chunk 2;"
    assert "batching is off for model 'model': its predict_fn streams" in server.log


def test_batching_from_the_environment_for_a_model_that_takes_rows(start_server) -> None:
    rows = """
        def model_fn(model_dir):
            return lambda batch: [[len(batch)] + row for row in batch]  # a model that takes a list of rows
    """
    server = start_server(rows, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_MAX_BATCH_SIZE="3",
                          TOOLKIT_MAX_BATCH_WAIT_MS="20000")
    answers = send_together(server, [[[1]], [[2]], [[3]]])
    assert [a.json() for a in answers] == [[[3, 1]], [[3, 2]], [[3, 3]]]


def test_multi_model_endpoints_batch_each_model_on_its_own(tmp_path) -> None:
    code = RECORDING.replace("max_batch_size = 4", "max_batch_size = 2")
    folders = {}
    for name in ("left", "right"):
        folder = folders[name] = tmp_path / name / "model"
        (folder / "code").mkdir(parents=True)
        (folder / "code" / "inference.py").write_text(textwrap.dedent(code))
    port = free_port()
    server = launch(tmp_path, Server, SAGEMAKER_MULTI_MODEL="true", SAGEMAKER_MODEL_SERVER_WORKERS="1",
                    BATCH_LOG=str(tmp_path / "batches.jsonl"), TOOLKIT_METRICS_PORT=str(port))
    try:
        server.wait_ready()
        for name, folder in folders.items():
            assert server.request("POST", "/models", json.dumps({"model_name": name, "url": str(folder)}).encode(),
                                  {"Content-Type": "application/json"}, timeout=60).status == 200
        bodies = [f"{name}-{i}" for name in folders for i in range(2)]
        answers = send_together(server, bodies, paths=[f"/models/{body.split('-')[0]}/invoke" for body in bodies])
        assert [a.json() for a in answers] == [{"echo": body, "batch": 2} for body in bodies]
        assert sorted(sorted(b) for b in batches(tmp_path / "batches.jsonl")) == [["left-0", "left-1"],
                                                                                  ["right-0", "right-1"]]
        counted = {f'toolkit_requests_total{{model="{name}",status="200"}}': 2 for name in folders}
        seen = scrape_when(port, counted)
        assert {name: seen.get(name) for name in counted} == counted  # each model its own counts
        assert seen['toolkit_batch_size_count{model="left"}'] == seen['toolkit_batch_size_count{model="right"}'] == 1
        assert [seen[f'toolkit_requests_in_flight{{model="{name}"}}'] for name in folders] == [0, 0]
    finally:
        server.stop(timeout=10)


def test_a_batch_closes_once_every_open_connection_has_its_request_in(start_server, tmp_path) -> None:
    log = tmp_path / "batches.jsonl"  # max_batch_size 4, a wait of 20 s: 3 clients must not wait for it
    server = start_server(RECORDING, SAGEMAKER_MODEL_SERVER_WORKERS="1", BATCH_LOG=str(log))
    answers = send_together(server, ["a", "b", "c"], timeout=10)
    assert [a.json() for a in answers] == [{"echo": x, "batch": 3} for x in "abc"]


def test_a_malformed_declaration_is_a_clear_503(start_server) -> None:
    server = start_server('max_batch_size = "lots"\n\ndef model_fn(model_dir):\n    return 1\n', wait=False)
    server.wait_ready(status=503)
    answer = server.invoke("1")
    assert answer.status == 503 and "max_batch_size = 'lots'" in answer.json()["message"]
