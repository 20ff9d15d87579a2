"""The request context a handler function gets as its optional trailing ``context`` argument."""

from __future__ import annotations

from typing import Any, Mapping, Optional

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
MAX_CUSTOM_ATTRIBUTES = 1024
# framing headers the server sets itself; a handler setting them would corrupt the response
RESERVED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer",
                      "te", "proxy-authenticate", "proxy-authorization"})


def headers_of(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, with lower-case names."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


class RequestContext:
    """What a handler may know about the request and say about the response.

    ``headers`` has lower-case names. ``content_type`` and ``accept`` are the raw header values
    (the handler functions' own arguments get the bare media types). Setters change the response:
    ``set_custom_attributes`` (sent back as X-Amzn-SageMaker-Custom-Attributes),
    ``set_response_header`` and ``set_status``. ``system_properties`` mirrors Multi Model Server's
    (``model_dir``, ``gpu_id``) for inference.py files that read it.
    """

    def __init__(self, headers: Mapping[str, str], model_dir: str = "", model_name: str = "model") -> None:
        self.headers = headers
        self.model_name = model_name
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "server_name": "sagemaker-toolkit"}
        self.response_headers: dict[str, str] = {}
        self.status: Optional[int] = None

    @property
    def content_type(self) -> Optional[str]:
        return self.headers.get("content-type")

    @property
    def accept(self) -> Optional[str]:
        return self.headers.get("accept")

    @property
    def custom_attributes(self) -> Optional[str]:
        value = self.headers.get(CUSTOM_ATTRIBUTES.lower())
        return value[:MAX_CUSTOM_ATTRIBUTES] if value is not None else None

    @property
    def inference_id(self) -> Optional[str]:
        return self.headers.get(INFERENCE_ID.lower())

    @property
    def target_model(self) -> Optional[str]:
        return self.headers.get(TARGET_MODEL.lower())

    def set_custom_attributes(self, value: str) -> None:
        if len(value) > MAX_CUSTOM_ATTRIBUTES:
            raise ValueError(f"custom attributes are limited to {MAX_CUSTOM_ATTRIBUTES} characters")
        self.response_headers[CUSTOM_ATTRIBUTES] = value

    def set_response_header(self, name: str, value: str) -> None:
        if "\n" in name or "\n" in value or "\r" in name or "\r" in value:
            raise ValueError("header names and values cannot contain line breaks")
        if name.lower() in RESERVED:
            raise ValueError(f"{name} is set by the server; it cannot be set by a handler")
        self.response_headers[name] = value

    def set_status(self, status: int) -> None:
        if not 200 <= int(status) <= 599:
            raise ValueError(f"HTTP status {status} is not between 200 and 599")
        self.status = int(status)
