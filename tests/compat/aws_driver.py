"""Runs the real AWS inference code inside the venv of aws_inference.py (never in the toolkit's venv).

Reads one JSON request on stdin, prints one JSON answer on stdout. Bytes travel as base64.

  {"op": "decode", "cases": [{"body": b64, "content_type": ...}]}
      -> sagemaker_inference.decoder.decode for each: {"array": nested list, "dtype", "shape"} or {"error"}
  {"op": "encode", "cases": [{"array": list, "dtype": ..., "content_type": ...}]}
      -> sagemaker_inference.encoder.encode for each: {"body": b64} or {"error"}
  {"op": "transform", "handler": "pytorch" | "base", "model_dir": ..., "code_dir": ... or null,
   "requests": [{"body": b64, "content_type": ..., "accept": ...}]}
      -> the real Transformer (as the model server calls it) for each request:
         {"status": int, "content_type": str, "body": b64}
"""

from __future__ import annotations

import base64
import json
import os
import sys


class Context:
    """The parts of the model server's context object the Transformer uses."""

    def __init__(self, model_dir: str, headers: dict) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [self]
        self._headers = headers
        self.status = 200
        self.content_type = None
        self.model_name = "model"

    def get_request_properties(self) -> dict:
        return self._headers

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_type = value

    def set_response_status(self, code: int = 200, phrase: str = "") -> None:
        self.status = code


def b64(data) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(bytes(data)).decode("ascii")


def decode_cases(cases: list) -> list:
    import numpy as np
    from sagemaker_inference import decoder

    out = []
    for case in cases:
        try:
            array = np.asarray(decoder.decode(base64.b64decode(case["body"]).decode("utf-8")
                                              if case.get("text") else base64.b64decode(case["body"]),
                                              case["content_type"]))
            out.append({"array": array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape)})
        except Exception as exc:
            out.append({"error": type(exc).__name__})
    return out


def encode_cases(cases: list) -> list:
    import numpy as np
    from sagemaker_inference import encoder

    out = []
    for case in cases:
        value = np.array(case["array"], dtype=case["dtype"]) if case.get("dtype") else case["array"]
        try:
            out.append({"body": b64(encoder.encode(value, case["content_type"]))})
        except Exception as exc:
            out.append({"error": type(exc).__name__})
    return out


def transform(request: dict) -> list:
    from sagemaker_inference.transformer import Transformer

    if request.get("code_dir"):
        sys.path.insert(0, request["code_dir"])
        os.environ["SAGEMAKER_PROGRAM"] = request.get("program", "inference.py")
    else:
        os.environ["SAGEMAKER_PROGRAM"] = "no_such_module_here.py"
    if request["handler"] == "pytorch":
        from sagemaker_pytorch_serving_container.default_pytorch_inference_handler import (
            DefaultPytorchInferenceHandler,
        )

        transformer = Transformer(default_inference_handler=DefaultPytorchInferenceHandler())
    else:
        transformer = Transformer()
    answers = []
    for item in request["requests"]:
        headers = {"Content-Type": item["content_type"]}
        if item.get("accept"):
            headers["Accept"] = item["accept"]
        context = Context(request["model_dir"], headers)
        result = transformer.transform([{"body": base64.b64decode(item["body"])}], context)
        body = result[0]
        answers.append({"status": context.status, "content_type": context.content_type, "body": b64(body)})
    return answers


def main() -> None:
    request = json.load(sys.stdin)
    op = request["op"]
    if op == "decode":
        answer = decode_cases(request["cases"])
    elif op == "encode":
        answer = encode_cases(request["cases"])
    elif op == "transform":
        answer = transform(request)
    else:
        raise SystemExit(f"unknown op {op!r}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
