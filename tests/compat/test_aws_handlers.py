"""inference.py files in the styles written for the AWS containers, served by the real ``serve``:
handlers that treat a JSON/CSV body as str, handlers that import sagemaker_inference, and scikit-learn
container handlers that import sagemaker_containers.beta.framework and sagemaker_training (none of the
three is installed here: toolkit's stand-ins answer)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serving"))

import serving_helpers
from serving_helpers import Server

start_server = serving_helpers.start_server  # the fixture

pytest.importorskip("numpy")

# Reads the body as the AWS toolkit hands it over: str for JSON and CSV, bytes for anything else.
STR_BODY = """
    import json
    import sys
    from io import StringIO

    import numpy as np
    import pandas as pd


    def model_fn(model_dir):
        return np.array([1.0, 10.0, 100.0])


    def input_fn(request_body, request_content_type):
        if request_content_type == "text/csv":
            return pd.read_csv(StringIO(request_body), header=None).values
        if request_content_type == "application/json":
            if not request_body.lstrip().startswith("{"):
                raise ValueError("send a JSON object")
            return np.array(json.loads(request_body)["instances"], dtype=float)
        if request_content_type == "application/octet-stream":
            return np.frombuffer(request_body, dtype=np.float64).reshape(-1, 3)
        raise ValueError("unsupported content type " + request_content_type)


    def predict_fn(input_data, model):
        return input_data @ model


    def output_fn(prediction, accept):
        # the stand-in is imported only by code that imports it
        return json.dumps({"predictions": prediction.tolist(),
                           "stand_in_loaded": "sagemaker_inference" in sys.modules})
"""


@pytest.fixture(scope="module")
def str_body_server(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("pandas")
    base = tmp_path_factory.mktemp("str_body")
    serving_helpers.write_model(base, STR_BODY)
    server = serving_helpers.launch(base, Server, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    server.wait_ready(timeout=60)
    yield server
    server.stop(timeout=10)


def test_csv_body_reaches_input_fn_as_str(str_body_server: Server) -> None:
    resp = str_body_server.invoke("1,2,3\n4,5,6\n", "text/csv")
    assert resp.status == 200, resp
    assert resp.json() == {"predictions": [321.0, 654.0], "stand_in_loaded": False}


def test_json_body_reaches_input_fn_as_str(str_body_server: Server) -> None:
    resp = str_body_server.invoke(json.dumps({"instances": [[1, 0, 1]]}), "application/json")
    assert resp.status == 200, resp
    assert resp.json()["predictions"] == [101.0]


def test_charset_parameter_still_gives_str_decoded_with_that_charset(str_body_server: Server) -> None:
    resp = str_body_server.invoke(json.dumps({"instances": [[2, 0, 0]]}), "application/json; charset=utf-8")
    assert resp.status == 200 and resp.json()["predictions"] == [2.0]
    # 'é' in latin-1 is one byte that is not valid UTF-8: only decoding with the named charset works
    resp = str_body_server.invoke('{"instances": [[1, 1, 1]], "note": "caf\xe9"}'.encode("latin-1"),
                                  "application/json; charset=ISO-8859-1")
    assert resp.status == 200 and resp.json()["predictions"] == [111.0]
    resp = str_body_server.invoke(b'{"instances": [[1, 1, 1]], "note": "caf\xe9"}', "application/json")
    assert resp.status == 400 and "not valid utf-8" in resp.json()["message"]


def test_other_bodies_stay_bytes(str_body_server: Server) -> None:
    import numpy as np

    resp = str_body_server.invoke(np.array([1.0, 2.0, 3.0]).tobytes(), "application/octet-stream")
    assert resp.status == 200, resp
    assert resp.json()["predictions"] == [321.0]


# Imports the AWS toolkit's modules, as handlers written for its containers do.
WITH_SAGEMAKER_INFERENCE = """
    import numpy as np
    from sagemaker_inference import (
        content_types,
        decoder,
        default_inference_handler,
        encoder,
        environment,
        errors,
        utils,
    )


    class Handler(default_inference_handler.DefaultInferenceHandler):
        def default_model_fn(self, model_dir):
            return np.array([[2.0], [3.0]])

        def default_predict_fn(self, data, model):
            return data @ model


    HANDLER = Handler()


    def model_fn(model_dir):
        assert model_dir == environment.model_dir, (model_dir, environment.model_dir)
        return HANDLER.default_model_fn(model_dir)


    def input_fn(input_data, content_type):
        if content_type not in (content_types.JSON, content_types.CSV, content_types.NPY):
            raise errors.UnsupportedFormatError(content_type)
        data = decoder.decode(input_data, content_type)
        if data.ndim != 2:
            raise errors.GenericInferenceToolkitError(422, "send rows of two numbers")
        return data.astype(float)


    def predict_fn(data, model):
        return HANDLER.default_predict_fn(data, model)


    def output_fn(prediction, accept):
        for media in utils.parse_accept(accept):
            if media in encoder.SUPPORTED_CONTENT_TYPES:
                return encoder.encode(prediction, media), media
        raise errors.UnsupportedFormatError(accept)
"""


def test_handler_importing_sagemaker_inference_runs_on_the_stand_in(start_server) -> None:
    server: Server = start_server(WITH_SAGEMAKER_INFERENCE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    resp = server.invoke("[[1, 1], [2, 0]]", "application/json")
    assert resp.status == 200, resp
    assert resp.json() == [[5.0], [4.0]]
    resp = server.invoke("1,1\n2,0", "text/csv", accept="text/csv")
    assert resp.status == 200 and resp.body == b"5.0\n4.0\n"
    assert resp.headers["content-type"] == "text/csv"
    # the AWS toolkit's errors answer with their status; its UnsupportedFormatError with 415 / 406
    resp = server.invoke("[1, 1]", "application/json")
    assert resp.status == 422 and resp.json() == {"message": "send rows of two numbers"}
    resp = server.invoke(b"\x89PNG", "image/png")
    assert resp.status == 415 and "image/png is not supported" in resp.json()["message"]
    resp = server.invoke("[[1, 1]]", "application/json", accept="application/xml")
    assert resp.status == 406 and "application/xml is not supported" in resp.json()["message"]


MODEL_SERVER = """
    from sagemaker_inference import model_server


    def model_fn(model_dir):
        return None
"""


def test_module_the_stand_in_lacks_fails_with_what_to_do(start_server) -> None:
    server: Server = start_server(MODEL_SERVER, wait=False, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    server.wait_ready(status=503)
    message = server.invoke("[1]").json()["message"]
    # the same wording as in a training job (test_training_scripts.py), with this package's advice
    assert ("sagemaker_inference.model_server is not covered by sagemaker-toolkit's stand-in for sagemaker_inference "
            "(it has: content_types, decoder, ") in message
    assert ("pip install sagemaker-inference to use the real one (an installed package always wins); "
            "see docs/compatibility.md#the-sagemaker_inference-module") in message


REAL_WINS = """
    import sagemaker_inference
    from sagemaker_inference import decoder


    def model_fn(model_dir):
        return None


    def transform_fn(model, body, content_type, accept):
        return sagemaker_inference.WHICH + " " + decoder.WHICH, "text/plain"
"""


def test_an_installed_sagemaker_inference_wins_over_the_stand_in(start_server) -> None:
    # a package named sagemaker_inference importable the ordinary way (here: beside inference.py, on
    # sys.path as site-packages would be) is used instead of the stand-in, submodules included
    files = {"code/sagemaker_inference/__init__.py": "WHICH = 'installed'\n",
             "code/sagemaker_inference/decoder.py": "WHICH = 'installed decoder'\n"}
    server: Server = start_server(REAL_WINS, files=files, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    resp = server.invoke("[1]", "application/json")
    assert resp.status == 200 and resp.body == b"installed installed decoder"


# A scikit-learn container script in its usual shape: the serving functions import
# sagemaker_containers.beta.framework (and this one logs through sagemaker_training), output_fn
# answers with worker.Response.
SKLEARN_CONTAINER_STYLE = """
    import os

    import numpy as np
    from sagemaker_containers.beta.framework import content_types, encoders, env, errors, modules, transformer, worker
    from sagemaker_training import logging_config
    from sklearn.linear_model import LinearRegression

    logger = logging_config.get_logger()


    def model_fn(model_dir):
        assert os.path.samefile(model_dir, env.model_dir), (model_dir, env.model_dir)
        rows = np.loadtxt(os.path.join(model_dir, "train.csv"), delimiter=",")
        logger.info("fitting on %d rows", len(rows))
        return LinearRegression().fit(rows[:, 1:], rows[:, 0])


    def input_fn(input_data, content_type):
        return encoders.decode(input_data, content_type)


    def predict_fn(input_data, model):
        return model.predict(np.atleast_2d(input_data))


    def output_fn(prediction, accept):
        if accept in (content_types.JSON, content_types.CSV):
            return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
        raise errors.UnsupportedFormatError(accept)
"""


def test_sklearn_container_handler_runs_on_the_sagemaker_containers_stand_in(start_server) -> None:
    pytest.importorskip("sklearn")
    import numpy as np

    # label first, then the features: label = x1 + 2 * x2
    server: Server = start_server(SKLEARN_CONTAINER_STYLE, files={"train.csv": "0,0,0\n1,1,0\n2,0,1\n3,1,1\n"},
                                  SAGEMAKER_MODEL_SERVER_WORKERS="1")
    resp = server.invoke("1,1\n0,2\n", "text/csv", accept="application/json")
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == pytest.approx([3.0, 4.0])
    resp = server.invoke("[[2, 1]]", "application/json", accept="text/csv")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/csv")
    assert [float(v) for v in resp.body.decode().split()] == pytest.approx([4.0])
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 0.0]]))
    resp = server.invoke(buffer.getvalue(), "application/x-npy", accept="application/json")
    assert resp.status == 200 and resp.json() == pytest.approx([1.0])
    # the stand-in's errors answer as the AWS toolkit's do: an unsupported type is the client's
    resp = server.invoke("1,1", "text/csv", accept="application/xml")
    assert resp.status == 406 and "application/xml is not supported" in resp.json()["message"]
    resp = server.invoke(b"<rows/>", "application/xml", accept="application/json")
    assert resp.status == 415 and "application/xml is not supported" in resp.json()["message"]
