"""The request context: docs/serving.md's example inference.py, extracted from the document and run
as written by the real ``serve`` over HTTP; plus transform_fn streaming."""

from __future__ import annotations

import json
import re
from pathlib import Path

import serving_helpers

start_server = serving_helpers.start_server  # the fixture

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def doc_example() -> str:
    """The python block after the ``<!-- tested: tests/serving/test_context.py -->`` marker."""
    found = re.search(r"<!-- tested: tests/serving/test_context.py -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/serving.md lost its tested request-context example"
    return found.group(1)


def test_the_documented_context_example(start_server) -> None:
    server = start_server(doc_example(), SAGEMAKER_MODEL_SERVER_WORKERS="1")

    ok = server.invoke(json.dumps({"rows": [[1, 2], [3, 4]]}), X_Amzn_SageMaker_Inference_Id="req-7",
                       X_Amzn_SageMaker_Target_Model="sums.tar.gz")
    assert ok.status == 200
    assert ok.json() == {"sums": [3, 7]}
    assert ok.headers["x-amzn-sagemaker-custom-attributes"] == "rows=2"
    assert ok.headers["x-inference-id"] == "req-7"
    assert ok.headers["x-target-model"] == "sums.tar.gz"

    bad = server.invoke("rows: 1,2")
    assert bad.status == 400
    assert bad.json() == {"message": 'the body must be JSON like {"rows": [[1, 2], [3, 4]]}'}

    too_many = server.invoke(json.dumps({"rows": [[1], [2], [3]]}), X_Amzn_SageMaker_Custom_Attributes="max_rows=2")
    assert too_many.status == 400
    assert too_many.json() == {"message": "3 rows sent; at most 2 are allowed"}
    # set before the ClientError: sent with the refusal
    assert too_many.headers["x-amzn-sagemaker-custom-attributes"] == "max_rows=2"

    too_long = server.invoke(json.dumps({"rows": [[1]]}), X_Amzn_SageMaker_Custom_Attributes="a" * 1025)
    assert too_long.status == 400
    assert "at most 1024" in too_long.json()["message"]

    # an answer that is not a generator is sent as usual when the client asks for an event stream
    sse = server.invoke(json.dumps({"rows": [[1, 1]]}), accept="text/event-stream")
    assert sse.status == 200
    assert sse.headers["content-type"] == "application/json"
    assert sse.json() == {"sums": [2]}


STREAMING_TRANSFORM = """
    import json

    def model_fn(model_dir):
        return str.upper

    def transform_fn(model, body, content_type, accept, context):
        words = json.loads(body)
        if not words:
            context.set_status(204)
        context.set_response_header("X-Words", str(len(words)))
        for word in words:
            yield model(word) + "\\n"
"""


def test_transform_fn_generator_streams_with_context_headers(start_server) -> None:
    server = start_server(STREAMING_TRANSFORM, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    resp = server.invoke(json.dumps(["a", "bc"]))
    assert resp.status == 200
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.headers["x-words"] == "2"
    assert resp.body == b"A\nBC\n"
    empty = server.invoke("[]")
    assert empty.status == 204
    assert empty.body == b""
