"""Stand-in for ``sagemaker_containers.beta.framework.worker``: ``Response``, what ``output_fn`` returns.

The real ``Response`` is a flask response. This one is the pair ``(body, content type)``, which
``serve`` sends as it is for any ``output_fn`` result (docs/serving.md), so flask is not imported for
it. The status and headers given to it are kept on the object but not sent: a handler answers
errors by raising.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Iterable, Mapping, Optional, Union

from toolkit.compat.importing import module_getattr

from . import content_types

__getattr__ = module_getattr(__name__, ("Response",))

Body = Union[str, bytes, Iterable[Union[str, bytes]], None]


class Response(tuple):
    """``worker.Response(body, mimetype=accept)``: the body and its content type (default JSON)."""

    default_mimetype = content_types.JSON

    def __new__(cls, response: Body = None, accept: Optional[str] = None, status: int = HTTPStatus.OK,
                headers: Optional[Mapping[str, str]] = None, mimetype: Optional[str] = None,
                direct_passthrough: bool = False) -> Response:
        if response is None:
            body: Union[str, bytes] = b""
        elif isinstance(response, (str, bytes)):
            body = response
        else:  # an iterable of chunks, as flask takes it
            body = b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in response)
        self = super().__new__(cls, (body, mimetype or cls.default_mimetype))
        self.status_code = int(status)
        self.headers = dict(headers or {})
        return self

    @property
    def mimetype(self) -> str:
        return self[1]

    @property
    def data(self) -> bytes:
        return self.get_data()

    @property
    def response(self) -> list[bytes]:
        return [self.get_data()]

    def get_data(self, as_text: bool = False) -> Any:
        body = self[0]
        if as_text:
            return body if isinstance(body, str) else body.decode("utf-8")
        return body.encode("utf-8") if isinstance(body, str) else body
