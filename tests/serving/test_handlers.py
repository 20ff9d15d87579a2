"""The inference.py contract, with handler files written the way AWS's examples write them, served
by the real ``serve`` over HTTP."""

from __future__ import annotations

import json
import tarfile
import textwrap
import time

import serving_helpers
from helpers import make_wheel, wait_for
from serving_helpers import Server

start_server = serving_helpers.start_server  # the fixture

# Like the SageMaker examples: model_fn reads an artifact from model_dir, input_fn/output_fn handle
# the content types themselves, predict_fn uses the model; context is optional and used where needed.
LINEAR = """
    import json
    import os

    import numpy as np

    from toolkit import ClientError


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.json")) as f:
            return np.array(json.load(f)["w"])


    def input_fn(request_body, request_content_type, context):
        context.set_response_header("X-Seen-Custom-Attributes", context.custom_attributes or "")
        context.set_response_header("X-Seen-Inference-Id", context.inference_id or "")
        context.set_response_header("X-Seen-Target-Model", context.target_model or "")
        if request_content_type == "application/json":
            data = json.loads(request_body)["inputs"]
        elif request_content_type == "text/csv":
            data = [[float(v) for v in line.split(",")] for line in request_body.decode().splitlines()]
        else:
            raise ClientError(f"unsupported content type {request_content_type}", 415)
        if data == "explode":
            raise RuntimeError("secret internal detail\\nsecond line")
        if data == "teapot":
            raise ClientError("I only brew predictions", 418)
        return np.array(data, dtype=float)


    def predict_fn(input_data, model):
        return input_data @ model


    def output_fn(prediction, accept, context):
        context.set_custom_attributes("scored=true")
        if accept == "text/csv":
            return "\\n".join(str(v) for v in prediction.tolist()), "text/csv"
        return json.dumps({"predictions": prediction.tolist()}), "application/json"


    def execution_parameters_fn():
        return {"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}
"""


def test_aws_style_handler_with_context(start_server) -> None:
    server: Server = start_server(LINEAR, files={"weights.json": '{"w": [1, 10]}'})
    resp = server.invoke(json.dumps({"inputs": [[1, 2], [3, 4]]}), "application/json; charset=utf-8",
                         X_Amzn_SageMaker_Custom_Attributes="trace=abc", X_Amzn_SageMaker_Inference_Id="id-7",
                         X_Amzn_SageMaker_Target_Model="m.tar.gz")
    assert resp.status == 200, resp
    assert resp.json() == {"predictions": [21.0, 43.0]}
    assert resp.headers["x-amzn-sagemaker-custom-attributes"] == "scored=true"
    assert resp.headers["x-seen-custom-attributes"] == "trace=abc"
    assert resp.headers["x-seen-inference-id"] == "id-7"
    assert resp.headers["x-seen-target-model"] == "m.tar.gz"

    resp = server.invoke("1,1\n2,0\n", "text/csv", accept="text/csv")
    assert resp.status == 200 and resp.body == b"11.0\n2.0"
    assert resp.headers["content-type"] == "text/csv"

    # a ClientError from the handler keeps its status; anything else is a 500 without the details' trace
    resp = server.invoke(json.dumps({"inputs": "teapot"}))
    assert resp.status == 418 and resp.json() == {"message": "I only brew predictions"}
    resp = server.invoke(json.dumps({"inputs": "explode"}))
    assert resp.status == 500
    message = resp.json()["message"]
    assert "RuntimeError" in message and "Traceback" not in message and "second line" not in message
    assert "Traceback" in server.log and "secret internal detail" in server.log  # the trace goes to the log
    resp = server.invoke(b"<x/>", "application/xml")
    assert resp.status == 415

    resp = server.request("GET", "/execution-parameters")
    assert resp.json() == {"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}


TRANSFORM = """
    import json

    def model_fn(model_dir, context):
        # context.system_properties as Multi Model Server gives it
        return {"dir": context.system_properties["model_dir"]}

    def transform_fn(model, request_body, content_type, accept):
        doc = json.loads(request_body)
        return json.dumps({"sum": sum(doc), "type": content_type, "model_dir": model["dir"]}), accept
"""


def test_transform_fn_and_submit_directory_archive(start_server, tmp_path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "serve_me.py").write_text(textwrap.dedent(TRANSFORM))
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(code / "serve_me.py", arcname="serve_me.py")
    server = start_server(None, SAGEMAKER_SUBMIT_DIRECTORY=f"file://{archive}", SAGEMAKER_PROGRAM="serve_me.py")
    resp = server.invoke("[1, 2, 3]", "application/json; charset=utf-8", accept="application/json")
    assert resp.status == 200, resp
    assert resp.json() == {"sum": 6, "type": "application/json", "model_dir": str(server.base / "model")}


def test_without_model_fn_ping_is_503_and_invocations_say_what_is_missing(start_server) -> None:
    server = start_server("def predict_fn(data, model):\n    return data\n", wait=False)
    server.wait_ready(status=503)
    resp = server.invoke("[1]")
    assert resp.status == 503
    assert "defines no model_fn(model_dir)" in resp.json()["message"]
    assert "defines no model_fn" in server.log


def test_model_fn_that_raises_leaves_the_server_up_with_503(start_server) -> None:
    server = start_server("def model_fn(model_dir):\n    raise FileNotFoundError('model.pt is missing')\n",
                          wait=False)
    server.wait_ready(status=503)
    deadline = time.monotonic() + 10
    while "model.pt is missing" not in server.invoke("[1]").body.decode() and time.monotonic() < deadline:
        time.sleep(0.1)
    resp = server.invoke("[1]")
    assert resp.status == 503 and "FileNotFoundError: model.pt is missing" in resp.json()["message"]


SLOW_LOAD = """
    import time

    def model_fn(model_dir):
        time.sleep(3)
        return lambda data: data
"""


def test_ping_answers_503_at_once_while_the_model_loads(start_server) -> None:
    server = start_server(SLOW_LOAD, wait=False)
    server.wait_ready(status=503)
    started = time.monotonic()
    assert server.ping() == 503
    assert time.monotonic() - started < 1.0  # /ping never waits for model_fn
    resp = server.invoke("[1]")
    assert resp.status == 503 and "loading" in resp.json()["message"]
    server.wait_ready()
    assert server.invoke("[1, 2]").json() == [1, 2]  # default predict: the model is callable


PID_MODEL = """
    import os

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "loaded_by"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        return os.getpid()

    def predict_fn(data, model):
        return {"model_loaded_in": model, "worker": os.getpid()}
"""


def test_preload_model_loads_once_before_forking(start_server) -> None:
    server = start_server(PID_MODEL, TOOLKIT_PRELOAD_MODEL="true")
    loaded_by = (server.base / "model" / "loaded_by").read_text().split()
    assert loaded_by == [str(server.proc.pid)]
    seen = {server.invoke("[]").json()["worker"] for _ in range(20)}
    assert seen <= set(server.worker_pids())
    assert server.invoke("[]").json()["model_loaded_in"] == server.proc.pid


def test_without_preload_each_worker_loads_the_model(start_server) -> None:
    server = start_server(PID_MODEL)
    deadline = time.monotonic() + 10
    path = server.base / "model" / "loaded_by"
    while len(path.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(int(p) for p in path.read_text().split()) == sorted(server.worker_pids())


def test_default_accept_variable(start_server) -> None:
    server = start_server(serving_helpers.ECHO, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv")
    resp = server.invoke("[[1, 2]]")
    assert resp.status == 200 and resp.headers["content-type"] == "text/csv" and resp.body == b"1,2\n"


def test_ping_lines_are_logged_only_when_asked(start_server) -> None:
    quiet = start_server(serving_helpers.ECHO)
    loud = start_server(serving_helpers.ECHO, TOOLKIT_LOG_PING="true")
    for server in (quiet, loud):
        for _ in range(3):
            assert server.ping() == 200
    wait_for(lambda: loud.log.count("GET /ping 200") >= 3, 10, "the access lines of /ping")  # written every 0.2 s
    assert "GET /ping 200" not in quiet.log



USES_DEPENDENCY = """
    import toolkit_serving_dep

    def model_fn(model_dir):
        return toolkit_serving_dep.FACTOR

    def predict_fn(data, model):
        return [x * model for x in data]
"""


def test_requirements_of_the_code_are_installed_at_start(start_server, tmp_path) -> None:
    wheel = make_wheel(tmp_path, "toolkit_serving_dep", "FACTOR = 7\n")
    target = tmp_path / "site"  # pip installs here (PIP_TARGET), not into the shared test venv
    server = start_server(USES_DEPENDENCY, files={"code/requirements.txt": f"{wheel}\n"}, PIP_TARGET=str(target),
                          PIP_NO_INDEX="1", PYTHONPATH=str(target))
    assert (target / "toolkit_serving_dep.py").is_file()
    assert server.invoke("[1, 2]").json() == [7, 14]
