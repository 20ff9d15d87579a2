"""Differential tests: the real sagemaker-inference 1.10.1 and sagemaker-pytorch-inference 2.0.25 (in a venv
of their own, run by aws_driver.py) and the toolkit answer the same inputs the same way.

- decoder / encoder: the real modules and toolkit's stand-in (toolkit/compat/sagemaker_inference), per
  content type;
- the PyTorch container's default handler (no inference.py, a TorchScript model.pt) and the real ``serve``
  over HTTP, on the same requests;
- the body type handed to transform_fn, per Content-Type.

The venv is made once and reused (aws_inference.py); the tests skip only when pip cannot reach the index.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serving"))

import aws_inference
import serving_helpers
from serving_helpers import Server, launch, write_model

np = pytest.importorskip("numpy")


@pytest.fixture(scope="session")
def aws_venv() -> Path:
    try:
        return aws_inference.ensure_venv()
    except aws_inference.Unreachable as exc:
        pytest.skip(str(exc))


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def npy(array: Any) -> bytes:
    import io

    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# -- decoder and encoder ------------------------------------------------------------------------

DECODE_CASES = [
    ("application/json", "[[1, 2.5], [3, 4]]"),
    ("application/json", "[1, 2, 3]"),
    ("application/json", "7"),
    ("text/csv", "1,2,3"),
    ("text/csv", "1,2\n3,4\n"),
    ("text/csv", "1.5,-2e3\n3,4"),
    ("text/csv", "1,,3"),
    ("application/x-npy", np.arange(6, dtype=np.float32).reshape(2, 3)),
    ("application/x-npy", np.array([1, 2], dtype=np.int64)),
    ("text/plain", "hello"),
]


def test_decoder_stand_in_gives_what_sagemaker_inference_gives(aws_venv: Path) -> None:
    from toolkit.compat.sagemaker_inference import decoder

    cases = []
    for media, body in DECODE_CASES:
        raw = npy(body) if media == "application/x-npy" else body.encode()
        cases.append({"body": b64(raw), "content_type": media, "text": media != "application/x-npy"})
    theirs = aws_inference.run_driver(aws_venv, {"op": "decode", "cases": cases})
    for (media, body), their in zip(DECODE_CASES, theirs):
        given = npy(body) if media == "application/x-npy" else body  # the AWS toolkit hands JSON/CSV over as str
        try:
            array = np.asarray(decoder.decode(given, media))
            ours = {"array": array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape)}
        except Exception as exc:
            ours = {"error": type(exc).__name__}
        assert json.dumps(ours) == json.dumps(their), (media, body)


ENCODE_CASES = [
    ("application/json", [[1.5, 2.0], [3.0, 4.0]], "float64"),
    ("application/json", [0.1, 0.2], "float32"),
    ("application/json", [[1, 2]], None),
    ("text/csv", [[1.5, 2.0], [3.0, 4.0]], "float64"),
    ("text/csv", [0.1, 0.2, 0.3], "float32"),
    ("text/csv", [1, 2, 3], "int64"),
    ("application/x-npy", [[1.0, 2.0]], "float32"),
    ("application/x-npy", [1, 2, 3], None),
    ("application/xml", [1], None),
]


def test_encoder_stand_in_gives_what_sagemaker_inference_gives(aws_venv: Path) -> None:
    from toolkit.compat.sagemaker_inference import encoder

    cases = [{"array": value, "dtype": dtype, "content_type": media} for media, value, dtype in ENCODE_CASES]
    theirs = aws_inference.run_driver(aws_venv, {"op": "encode", "cases": cases})
    for (media, value, dtype), their in zip(ENCODE_CASES, theirs):
        data = np.array(value, dtype=dtype) if dtype else value
        try:
            out = encoder.encode(data, media)
            ours = {"body": b64(out)}
        except Exception as exc:
            ours = {"error": type(exc).__name__}
        assert ours == their, (media, value, dtype)


def test_built_in_csv_codec_writes_numbers_as_the_aws_encoder_does(aws_venv: Path) -> None:
    # the generic path (no output_fn) answers text/csv with the toolkit's own codec, not the stand-in
    from toolkit.builtin.formats import encode_csv

    arrays = [np.array([0.1, 0.25, 3.0], dtype=np.float32), np.array([[1.5, 2.0], [3.0, 4.0]]),
              np.array([[1, 2], [3, 4]])]
    cases = [{"array": a.tolist(), "dtype": str(a.dtype), "content_type": "text/csv"} for a in arrays]
    theirs = aws_inference.run_driver(aws_venv, {"op": "encode", "cases": cases})
    for array, their in zip(arrays, theirs):
        assert encode_csv(array) == base64.b64decode(their["body"]), array


# -- the PyTorch container's default handler against serve -----------------------------------------


@pytest.fixture(scope="module")
def torchscript_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    base = tmp_path_factory.mktemp("torch_default")
    model_dir = write_model(base, None)
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.jit.save(torch.jit.script(net), str(model_dir / "model.pt"))
    return base


@pytest.fixture(scope="module")
def torch_server(torchscript_model: Path) -> Iterator[Server]:
    server = launch(torchscript_model, Server, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    server.wait_ready(timeout=60)
    yield server
    server.stop(timeout=10)


TORCH_REQUESTS = [
    ("application/json", "[[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]]", "application/json"),
    ("application/json", "[1, 2, 3]", "application/json"),
    ("text/csv", "1,2,3", "application/json"),
    ("text/csv", "1,2,3\n4,5,6", "text/csv"),
    ("application/json", "[[1, 2, 3]]", "text/csv"),
    ("application/x-npy", "npy", "application/json"),
    ("application/json", "[[0.5, 0.25, 1]]", "application/x-npy"),
]


def test_default_pytorch_handler_answers_as_sagemaker_pytorch_inference(aws_venv: Path, torchscript_model: Path,
                                                                         torch_server: Server) -> None:
    bodies = [npy(np.array([[1.0, 2.0, 3.0]], dtype=np.float32)) if body == "npy" else body.encode()
              for _, body, _ in TORCH_REQUESTS]
    requests = [{"body": b64(raw), "content_type": media, "accept": accept}
                for (media, _, accept), raw in zip(TORCH_REQUESTS, bodies)]
    theirs = aws_inference.run_driver(aws_venv, {"op": "transform", "handler": "pytorch",
                                                 "model_dir": str(torchscript_model / "model"), "requests": requests})
    for (media, _, accept), raw, their in zip(TORCH_REQUESTS, bodies, theirs):
        resp = torch_server.invoke(raw, media, accept=accept)
        assert their["status"] == 200, their
        assert resp.status == 200, (media, accept, resp)
        assert resp.headers["content-type"] == their["content_type"] == accept
        assert resp.body == base64.b64decode(their["body"]), (media, accept)


# -- what transform_fn gets -------------------------------------------------------------------------

PROBE = """
    def model_fn(model_dir):
        return None

    def transform_fn(model, body, content_type, accept):
        kind = "str" if isinstance(body, str) else "bytes" if isinstance(body, (bytes, bytearray)) else "other"
        return kind, "text/plain"
"""

BODY_TYPES = ["application/json", "text/csv", "application/octet-stream", "text/plain", "application/x-npy",
              "image/jpeg"]


def test_transform_fn_gets_str_or_bytes_as_from_sagemaker_inference(aws_venv: Path, start_server) -> None:
    server: Server = start_server(PROBE, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    code_dir = server.base / "model" / "code"
    requests = [{"body": b64(b"[1]"), "content_type": media, "accept": "text/plain"} for media in BODY_TYPES]
    theirs = aws_inference.run_driver(aws_venv, {"op": "transform", "handler": "base", "program": "inference.py",
                                                 "model_dir": str(server.base / "model"), "code_dir": str(code_dir),
                                                 "requests": requests})
    for media, their in zip(BODY_TYPES, theirs):
        resp = server.invoke(b"[1]", media, accept="text/plain")
        assert resp.status == 200, resp
        assert resp.body == base64.b64decode(their["body"]), media


start_server = serving_helpers.start_server  # the fixture
