"""Handlers that define only model_fn (or nothing), written the way PyTorch, XGBoost and scikit-learn
users write them for the AWS framework containers, served by the real ``serve`` over HTTP: the
framework's defaults must do the rest, as the container would. The expected answers come from the
same model called directly in the test."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serving"))

from serving_helpers import BIN, Server, launch, write_model

np = pytest.importorskip("numpy")

StartModule = Callable[..., Server]


@pytest.fixture(scope="module")
def serve_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartModule]:
    """Start serve (one worker) on a model folder that ``prepare(model_dir)`` fills; shared by a module."""
    servers: list[Server] = []

    def start(inference: Optional[str], prepare: Callable[[Path], Any], **variables: str) -> Server:
        base = tmp_path_factory.mktemp("opt_ml")
        prepare(write_model(base, inference))
        server = launch(base, Server, **{"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **variables})
        servers.append(server)
        server.wait_ready(timeout=90)
        return server

    yield start
    for server in servers:
        server.stop(timeout=10)


def close(got: Any, expected: Any) -> bool:
    return np.shape(got) == np.shape(expected) and np.allclose(got, expected, atol=1e-6)


def npy(array: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# -- PyTorch -----------------------------------------------------------------------------------

TORCH_NET = """
    import os

    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.drop = nn.Dropout(p=0.9)  # random in training mode: answers are stable only after eval()

        def forward(self, x):
            x = x.view(-1, 3)
            return self.drop(self.fc(x))


    def model_fn(model_dir):
        model = Net()
        with open(os.path.join(model_dir, "model.pth"), "rb") as f:
            model.load_state_dict(torch.load(f))
        return model  # left in training mode, as many handlers do
"""


@pytest.fixture(scope="module")
def torch_net(serve_model: StartModule) -> tuple[Server, Any]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    reference = torch.nn.Linear(3, 2)

    def prepare(model_dir: Path) -> None:
        torch.save({"fc.weight": reference.weight.data, "fc.bias": reference.bias.data}, str(model_dir / "model.pth"))

    return serve_model(TORCH_NET, prepare), reference


def torch_expected(reference: Any, rows: list) -> list:
    import torch

    with torch.no_grad():
        return reference(torch.tensor(rows, dtype=torch.float32).view(-1, 3)).tolist()


def test_pytorch_module_with_only_model_fn_answers_json(torch_net) -> None:
    server, reference = torch_net
    rows = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]
    for _ in range(3):  # the same answer every time: the model runs in eval() mode
        resp = server.invoke(json.dumps(rows), "application/json")
        assert resp.status == 200, resp
        assert close(resp.json(), torch_expected(reference, rows))


def test_pytorch_module_takes_npy_and_csv(torch_net) -> None:
    server, reference = torch_net
    # float64 NPY (numpy's default): cast to the model's float32 (the AWS container fails on this one)
    resp = server.invoke(npy(np.array([[1.0, 2.0, 3.0]])), "application/x-npy", accept="application/json")
    assert resp.status == 200, resp
    assert close(resp.json(), torch_expected(reference, [[1, 2, 3]]))
    resp = server.invoke("1,2,3\n4,5,6\n", "text/csv", accept="text/csv")
    assert resp.status == 200, resp
    got = [[float(v) for v in line.split(",")] for line in resp.body.decode().splitlines()]
    assert close(got, torch_expected(reference, [[1, 2, 3], [4, 5, 6]]))


def test_pytorch_default_input_refuses_what_is_not_numbers(torch_net) -> None:
    server, _ = torch_net
    resp = server.invoke(json.dumps({"inputs": "text"}), "application/json")
    assert resp.status == 400
    assert "PyTorch model's default input_fn" in resp.json()["message"]


TORCHSCRIPT_INPUT_ONLY = """
    # No model_fn: the container's default loads the TorchScript model.pt. input_fn reads the text body.
    import json

    import torch


    def input_fn(request_body, request_content_type):
        payload = json.loads(request_body)
        assert isinstance(request_body, str)
        return torch.tensor(payload["instances"], dtype=torch.float32)
"""


def test_torchscript_model_pt_loads_without_model_fn(serve_model: StartModule) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    net = torch.nn.Linear(2, 1)

    def prepare(model_dir: Path) -> None:
        torch.jit.save(torch.jit.script(net), str(model_dir / "model.pt"))

    server = serve_model(TORCHSCRIPT_INPUT_ONLY, prepare)
    resp = server.invoke(json.dumps({"instances": [[1, 2], [3, 4]]}), "application/json")
    assert resp.status == 200, resp
    with torch.no_grad():
        expected = net(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    assert close(resp.json(), expected)


def test_a_pth_file_that_is_not_torchscript_says_what_to_do(serve_model: StartModule, tmp_path_factory) -> None:
    torch = pytest.importorskip("torch")
    base = tmp_path_factory.mktemp("state_dict_only")
    model_dir = write_model(base, None)
    torch.save(torch.nn.Linear(2, 1).state_dict(), str(model_dir / "model.pth"))
    server = launch(base, Server, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        server.wait_ready(timeout=60, status=503)
        deadline = time.monotonic() + 60
        message = "the model is loading"
        while "loading" in message and time.monotonic() < deadline:  # 503 while torch loads, then the reason
            resp = server.invoke("[[1, 2]]", "application/json")
            assert resp.status == 503
            message = resp.json()["message"]
            time.sleep(0.1)
        assert "model.pth is not" in message and "torch.jit.save" in message and "model_fn" in message
    finally:
        server.stop(timeout=10)


# -- XGBoost -----------------------------------------------------------------------------------

XGB_BOOSTER = """
    import os

    import xgboost as xgb


    def model_fn(model_dir):
        booster = xgb.Booster()
        booster.load_model(os.path.join(model_dir, "xgboost-model.json"))
        return booster
"""

XGB_CLASSIFIER = """
    import os
    import pickle


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
            return pickle.load(f)
"""


@pytest.fixture(scope="module")
def xgb_data() -> tuple[Any, Any]:
    rng = np.random.RandomState(0)
    x = rng.rand(80, 3)
    y = (x[:, 0] + x[:, 2] > 1).astype(int)
    return x, y


@pytest.fixture(scope="module")
def xgb_booster(serve_model: StartModule, xgb_data) -> tuple[Server, Any]:
    xgb = pytest.importorskip("xgboost")
    x, y = xgb_data
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=5)
    return serve_model(XGB_BOOSTER, lambda d: booster.save_model(str(d / "xgboost-model.json"))), booster


def test_xgboost_booster_with_only_model_fn_answers_csv(xgb_booster) -> None:
    import xgboost as xgb

    server, booster = xgb_booster
    rows = np.array([[0.1, 0.5, 0.9], [0.7, 0.2, 0.3]])
    expected = booster.predict(xgb.DMatrix(rows))
    # a trailing newline, as Batch Transform and most clients send
    resp = server.invoke("0.1,0.5,0.9\n0.7,0.2,0.3\n", "text/csv", accept="text/csv")
    assert resp.status == 200, resp
    assert resp.body.decode() == "".join(str(v) + "\n" for v in expected)  # float32 written as the container does
    resp = server.invoke("0.1,0.5,0.9", "text/csv", accept="application/json")
    assert resp.json() == pytest.approx([float(expected[0])])


def test_xgboost_booster_takes_libsvm_and_missing_values(xgb_booster) -> None:
    import xgboost as xgb

    server, booster = xgb_booster
    resp = server.invoke("0 1:0.1 2:0.5 3:0.9\n", "text/libsvm", accept="application/json")
    assert resp.status == 200, resp
    assert resp.json() == pytest.approx(booster.predict(xgb.DMatrix(np.array([[0.1, 0.5, 0.9]]))).tolist())
    resp = server.invoke("0.1,,0.9", "text/csv", accept="application/json")
    assert resp.status == 200, resp
    assert resp.json() == pytest.approx(booster.predict(xgb.DMatrix(np.array([[0.1, np.nan, 0.9]]))).tolist())


def test_xgboost_refuses_a_type_it_cannot_read_with_415(xgb_booster) -> None:
    server, _ = xgb_booster
    resp = server.invoke(b"\x00", "image/png")
    assert resp.status == 415
    assert "text/libsvm" in resp.json()["message"]


def test_xgboost_classifier_with_only_model_fn_answers_labels(serve_model: StartModule, xgb_data) -> None:
    xgb = pytest.importorskip("xgboost")
    import pickle

    x, y = xgb_data
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    server = serve_model(XGB_CLASSIFIER, lambda d: (d / "model.pkl").write_bytes(pickle.dumps(clf)))
    rows = [[0.9, 0.5, 0.9], [0.1, 0.2, 0.1]]
    resp = server.invoke("\n".join(",".join(map(str, r)) for r in rows), "text/csv", accept="application/json")
    assert resp.status == 200, resp
    assert resp.json() == clf.predict(np.array(rows)).tolist()


# -- scikit-learn ------------------------------------------------------------------------------

SKLEARN = """
    import os

    import joblib


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


@pytest.fixture(scope="module")
def sklearn_model(serve_model: StartModule, xgb_data) -> tuple[Server, Any]:
    pytest.importorskip("sklearn")
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = xgb_data
    model = LogisticRegression().fit(x, y)
    return serve_model(SKLEARN, lambda d: joblib.dump(model, str(d / "model.joblib"))), model


def test_sklearn_estimator_with_only_model_fn(sklearn_model) -> None:
    server, model = sklearn_model
    rows = [[0.9, 0.5, 0.9], [0.1, 0.2, 0.1]]
    expected = model.predict(np.array(rows, dtype=np.float32)).tolist()
    resp = server.invoke(json.dumps(rows), "application/json")
    assert resp.status == 200, resp
    assert resp.json() == expected
    resp = server.invoke("0.9,0.5,0.9\n0.1,0.2,0.1\n", "text/csv", accept="text/csv")
    assert resp.status == 200 and resp.body.decode().split() == [str(v) for v in expected]
    # one CSV row: the sklearn container squeezes it to 1-D and the estimator refuses it (500); here it is a row
    resp = server.invoke("0.9,0.5,0.9", "text/csv")
    assert resp.status == 200 and resp.json() == expected[:1]


# -- the framework is imported only for its own models ------------------------------------------


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([str(BIN / "python"), "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_defaults_for_a_sklearn_model_import_neither_torch_nor_xgboost(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    code = (
        "from sklearn.linear_model import LinearRegression\n"
        "from toolkit.manager import get_plugin_manager\nfrom toolkit.serving.codecs import Codecs\n"
        "codecs = Codecs(get_plugin_manager({}).hook)\n"
        "assert codecs.model_defaults(LinearRegression()).name == 'sklearn'\n"
        "assert codecs.model_defaults(object()).name == 'generic'\n"
        f"assert codecs.load_model(__import__('pathlib').Path({str(tmp_path)!r})) is None"
    )
    loaded = loaded_after(code)
    assert "torch" not in loaded and "xgboost" not in loaded


def test_a_gpu_model_stays_on_its_gpu_and_a_cpu_model_moves_to_one_when_available() -> None:
    # No GPU here: the device rule takes plain values (what torch would report), so it is tested as such
    from toolkit.builtin.pytorch import device_for

    assert device_for(["cpu", "cpu"], cuda_available=False) == "cpu"
    assert device_for(["cpu"], cuda_available=True) == "cuda"
    assert device_for(["cuda:1", "cuda:1"], cuda_available=True) == "cuda:1"
    assert device_for([], cuda_available=True) == "cuda"


