"""The route table: each route written once, and everything built from it.

A ``Route`` is a path (``{name}`` stands for one path segment), its methods and the name of the
app's method that answers it: ``handler(environ, **segments) -> (status, headers, body)``, the
body bytes or a ``toolkit.serving.streaming.Stream``; a handler may raise ``toolkit.ClientError``
for a 4xx. ``RoutedApp`` turns its class's ``ROUTES``
into

- the fast path: one dict lookup on (path, method) per request, no Flask and no hook calls (what
  makes the server fast); paths with segments are matched by a regular expression after it;
- the Flask app (made on first use) that answers everything else: 404 and 405 listing the routes
  of the table, OPTIONS, and the same handlers for the Flask test client.

A multi-model endpoint's app adds its /models rows to the SageMaker ones.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any, Callable, Iterable, NamedTuple, Optional

from toolkit.errors import ClientError
from toolkit.serving.streaming import Stream

log = logging.getLogger("toolkit")

JSON_TYPE = [("Content-Type", "application/json")]
ANSWER_KEY = "toolkit.answer"  # set in the environ: (status code, body bytes or "-"), for the access log
REASONS = {200: "200 OK", 400: "400 Bad Request", 404: "404 Not Found", 405: "405 Method Not Allowed",
           406: "406 Not Acceptable", 411: "411 Length Required", 413: "413 Payload Too Large",
           415: "415 Unsupported Media Type", 500: "500 Internal Server Error",
           503: "503 Service Unavailable", 504: "504 Gateway Timeout"}
SEGMENT = re.compile(r"\{(\w+)\}")

Answer = tuple[int, list, Any]  # (status, headers, bytes or a Stream)


class Route(NamedTuple):
    path: str  # "/ping"; "/models/{name}" matches one segment (no "/") as the argument ``name``
    methods: tuple[str, ...]  # GET also answers HEAD (the same status and headers, no body)
    handler: str  # the app's method: handler(environ, **segments) -> (status, headers, body)


SAGEMAKER_ROUTES = (
    Route("/ping", ("GET",), "ping"),
    Route("/invocations", ("POST",), "invocations"),
    Route("/execution-parameters", ("GET",), "execution_parameters"),
)


def status_line(code: int) -> str:
    if code in REASONS:
        return REASONS[code]
    from http import HTTPStatus

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Status"


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode("utf-8")


def refusal(exc: ClientError) -> Answer:
    """The answer for a request a handler refused with ``toolkit.ClientError`` (a 4xx)."""
    return exc.status, list(JSON_TYPE), error_body(str(exc))


def _wsgi(handler: Callable[..., Answer], head: bool = False) -> Callable[..., Iterable[bytes]]:
    """``handler`` as a WSGI callable (a HEAD answer leaves out the body, keeping its Content-Length)."""

    def serve(environ: dict, start_response: Callable[..., Any], segments: Optional[dict] = None) -> Iterable[bytes]:
        try:  # (segments as a dict, not **: a call with ** makes a dict per request, ~0.1 us)
            code, headers, body = handler(environ, **segments) if segments else handler(environ)
        except ClientError as exc:
            code, headers, body = refusal(exc)
        if isinstance(body, Stream):
            environ[ANSWER_KEY] = (code, "-")
            start_response(status_line(code), headers)
            if head:
                body.close()
                return (b"",)
            return body
        size = len(body)
        environ[ANSWER_KEY] = (code, size)
        headers.append(("Content-Length", str(size)))
        start_response(status_line(code), headers)
        return (b"",) if head else (body,)

    return serve


class RoutedApp:
    """A WSGI app answering the routes of its class's ``ROUTES`` with its own methods."""

    ROUTES: tuple[Route, ...] = SAGEMAKER_ROUTES

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Callable[..., Iterable[bytes]]] = {}
        self._patterns: list[tuple[re.Pattern, str, Callable[..., Iterable[bytes]]]] = []
        for route in self.ROUTES:
            handler = getattr(self, route.handler)
            for method in route.methods + (("HEAD",) if "GET" in route.methods else ()):
                serve = _wsgi(handler, head=method == "HEAD")
                if SEGMENT.search(route.path):
                    self._patterns.append((_pattern(route.path), method, serve))
                else:
                    self._exact[(route.path, method)] = serve
        self._flask: Any = None
        self._flask_lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        serve = self._exact.get((environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")))
        if serve is not None:
            return serve(environ, start_response)
        if self._patterns:
            path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
            for pattern, wanted, serve in self._patterns:
                if method == wanted and (match := pattern.fullmatch(path)) is not None:
                    return serve(environ, start_response, match.groupdict())
        return self.flask(environ, _recording(environ, start_response))

    @property
    def flask(self) -> Any:
        """The Flask app, made on first use: the routes of the table never need it, and start-up stays fast."""
        if self._flask is None:
            with self._flask_lock:
                if self._flask is None:
                    self._flask = create_flask_app(self)
        return self._flask

    def allowed(self, path: str) -> list[str]:
        """The methods the routes matching ``path`` accept (for 405 answers)."""
        return [m for route in self.ROUTES if _pattern(route.path).fullmatch(path) for m in route.methods]


def _recording(environ: dict, start_response: Callable[..., Any]) -> Callable[..., Any]:
    """``start_response`` that also leaves the answer's status and size in ``environ[ANSWER_KEY]``
    (for Flask's answers; the routes of the table put them there themselves)."""

    def respond(status: str, headers: list, exc_info: Any = None) -> Any:
        size = next((value for name, value in reversed(headers) if name.lower() == "content-length"), "-")
        environ[ANSWER_KEY] = (status[:3], size)
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return respond


def _pattern(path: str) -> re.Pattern:
    parts = SEGMENT.split(path)  # literal, segment name, literal, ...
    return re.compile("".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)))


def create_flask_app(app: RoutedApp) -> Any:
    """The Flask app for ``app``: a rule per row of its table (the same handlers), JSON errors for the rest."""
    from flask import Flask, Response, request
    from werkzeug.exceptions import HTTPException

    flask = Flask("toolkit.serving", static_folder=None)
    for route in app.ROUTES:
        handler = getattr(app, route.handler)

        def view(handler: Callable[..., Answer] = handler, **segments: str) -> Response:
            try:
                code, headers, body = handler(request.environ, **segments)
            except ClientError as exc:
                code, headers, body = refusal(exc)
            return Response(body, status=code, headers=headers)

        flask.add_url_rule(SEGMENT.sub(r"<\1>", route.path), endpoint=f"{route.handler} {' '.join(route.methods)}",
                           view_func=view, methods=list(route.methods))

    @flask.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        message = f"{request.method} {request.path}: {exc.name}"
        if exc.code == 405:
            allowed = app.allowed(request.path)
            message += f"; this route accepts {', '.join(allowed)}" if allowed else ""
        elif exc.code == 404:
            message += f"; routes: {', '.join(f'{m} {r.path}' for r in app.ROUTES for m in r.methods)}"
        allow = [(name, value) for name, value in exc.get_headers() if name == "Allow"]
        return Response(error_body(message), status=exc.code or 500, headers=allow, mimetype="application/json")

    @flask.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return Response(error_body(f"internal error: {type(exc).__name__}"), status=500, mimetype="application/json")

    return flask


def read_body(environ: dict, limit: Optional[int], too_large: Callable[[int], str]) -> bytes:
    """The request body, refused with 400 (a bad Content-Length) or 413 (over ``limit`` bytes)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            raise ClientError(f"Content-Length {length!r} is not a number") from None
        if limit is not None and size > limit:
            raise ClientError(too_large(size), status=413)
        return stream.read(size)
    data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise ClientError(too_large(len(data)), status=413)
    return data
