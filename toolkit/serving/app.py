"""The WSGI application: /ping, /invocations, /execution-parameters, and a Flask app for the rest.

The three SageMaker routes are answered by ``ServingApp`` directly from the WSGI environ (no
Flask request objects, no hook calls, codecs looked up once), which is what makes the server
fast; every other path goes to the Flask app made by ``create_flask_app``, which also has the
three routes (same code) for the route table, the Flask test client and future routes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from toolkit.environment import ServingEnv
from toolkit.errors import ClientError, ToolkitError
from toolkit.serving import batching
from toolkit.serving.context import MAX_CUSTOM_ATTRIBUTES, RequestContext, headers_of
from toolkit.serving.handler import HANDLER_FAILURES, Handler
from toolkit.serving.observer import MODEL_KEY, TIMED_OUT_KEY
from toolkit.serving.streaming import EVENT_STREAM, Stream, is_stream, split_event_stream
from toolkit.serving.streaming import start as start_stream

log = logging.getLogger("toolkit")

JSON_TYPE = [("Content-Type", "application/json")]
REASONS = {200: "200 OK", 400: "400 Bad Request", 404: "404 Not Found", 405: "405 Method Not Allowed",
           406: "406 Not Acceptable", 411: "411 Length Required", 413: "413 Payload Too Large",
           415: "415 Unsupported Media Type", 500: "500 Internal Server Error",
           503: "503 Service Unavailable", 504: "504 Gateway Timeout"}
ROUTES = {"/ping": ("GET",), "/invocations": ("POST",), "/execution-parameters": ("GET",)}


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


def too_large_message(size: Optional[int], env: ServingEnv) -> str:
    """The 413 message for a body of ``size`` bytes (None: a chunked body, its size not known yet)."""
    what = f"the request body has {size} bytes, more" if size is not None else "the chunked request body is larger"
    return f"{what} than SAGEMAKER_MAX_PAYLOAD_IN_MB={env.max_payload_mb} allows ({env.max_payload_bytes} bytes)"


class _Empty:
    """A request with no context-reading handler function shares this (nothing to set)."""


class ServingApp:
    """The WSGI callable every worker serves."""

    def __init__(self, handler: Handler, env: ServingEnv, model_dir: Optional[str] = None,
                 model_name: str = "model", metrics: Any = None) -> None:
        self.handler = handler
        self.env = env
        self.limit = env.max_payload_bytes
        self.inflight = 0
        self._count_lock = threading.Lock()
        self._model_dir = model_dir if model_dir is not None else str(env.model_dir)
        self.model_name = model_name  # a multi-model endpoint's name for it; "model" otherwise
        self._flask: Any = None
        self._flask_lock = threading.Lock()
        self.ready = False  # set once the model is loaded in this process
        self.metrics = metrics  # toolkit.serving.metrics.Metrics when TOOLKIT_METRICS_PORT is set
        self.batcher = batching.attach(handler, env, self._observe_batch if metrics is not None else None,
                                       model_name)

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model in this process (the server is already answering /ping with 503)."""
        started = time.perf_counter()
        if not self.handler.problem:
            self.handler.load_model()
        if self.handler.problem:
            log.error("not ready: %s", self.handler.problem)
        else:
            took = time.perf_counter() - started
            self.record_load(took)
            log.info("model loaded in process %d in %.2f s", os.getpid(), took)
            self.ready = True

    def use_connections(self, count: Any) -> None:
        """In a worker: ``count()`` is its open connections (batches close once all of them are in)."""
        if self.batcher is not None:
            self.batcher.capacity = count

    def record_load(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.model(self.model_name).observe("toolkit_model_load_seconds", seconds)

    def _observe_batch(self, size: int, waits: list) -> None:
        series = self.metrics.model(self.model_name)
        series.observe("toolkit_batch_size", size)
        series.observe_many("toolkit_batch_queue_seconds", waits)

    def idle(self) -> bool:
        return self.inflight == 0

    def _done(self) -> None:
        with self._count_lock:
            self.inflight -= 1

    @property
    def flask(self) -> Any:
        """The Flask app, made on first use: the hot routes never need it, and start-up stays fast."""
        if self._flask is None:
            with self._flask_lock:
                if self._flask is None:
                    self._flask = create_flask_app(self)
        return self._flask

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/invocations" and method == "POST":
            environ[MODEL_KEY] = self.model_name
            with self._count_lock:
                self.inflight += 1
            series = self.metrics.model(self.model_name) if self.metrics is not None else None
            if series is not None:
                series.started()
                started = time.perf_counter()
            body = b""
            code = 500
            try:
                code, headers, body = self.invocations(environ)
            finally:
                if not isinstance(body, Stream):  # a stream counts as in flight until it is closed
                    self._done()
                    if series is not None:
                        series.finished(504 if environ.get(TIMED_OUT_KEY) else code, time.perf_counter() - started)
            if isinstance(body, Stream):
                if series is None:
                    body.on_close = self._done
                else:
                    def closed() -> None:
                        self._done()
                        series.finished(504 if environ.get(TIMED_OUT_KEY) else code, time.perf_counter() - started)

                    body.on_close = closed
                start_response(status_line(code), headers)
                return body
        elif path == "/ping" and method in ("GET", "HEAD"):
            code, headers, body = self.ping()
        elif path == "/execution-parameters" and method == "GET":
            code, headers, body = self.execution_parameters(environ)
        else:
            return self.flask(environ, start_response)
        headers.append(("Content-Length", str(len(body))))
        start_response(status_line(code), headers)
        return (body,)

    # -- routes -------------------------------------------------------------------------------

    def ping(self) -> tuple[int, list, bytes]:
        if self.ready:
            return 200, [], b""
        return 503, list(JSON_TYPE), error_body(self.handler.problem or "the model is loading")

    def invocations(self, environ: dict) -> tuple[int, list, Any]:
        """The answer to POST /invocations: (status, headers, bytes or a ``Stream``)."""
        if not self.ready:
            return 503, list(JSON_TYPE), error_body(self.handler.problem or "the model is loading; retry shortly")
        attributes = environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES")
        if attributes is not None and len(attributes) > MAX_CUSTOM_ATTRIBUTES:
            return 400, list(JSON_TYPE), error_body(
                f"X-Amzn-SageMaker-Custom-Attributes has {len(attributes)} characters; "
                f"at most {MAX_CUSTOM_ATTRIBUTES} are allowed")
        context = _NO_CONTEXT
        try:
            body = self._body(environ)
            content_type = environ.get("CONTENT_TYPE", "")
            sse, accept = split_event_stream(environ.get("HTTP_ACCEPT"))
            if self.handler.needs_context:
                context = RequestContext(headers_of(environ), self._model_dir, self.model_name)
            else:
                context = _NO_CONTEXT
            result, media = self.handler.invoke(body, content_type, accept, context)
            if is_stream(result):
                result = start_stream(result, sse)
                if sse:
                    media = EVENT_STREAM
        except ClientError as exc:  # headers the handler set before refusing are sent with the refusal
            return exc.status, [*JSON_TYPE, *context.response_headers.items()], error_body(str(exc))
        except ToolkitError as exc:
            log.error("POST /invocations: %s", exc)
            return exc.status, list(JSON_TYPE), error_body(str(exc))
        except HANDLER_FAILURES as exc:
            log.exception("POST /invocations: the handler raised")
            first = (str(exc).splitlines() or [""])[0][:300]
            return 500, list(JSON_TYPE), error_body(
                f"the model's handler raised {type(exc).__name__}: {first}" if first else
                f"the model's handler raised {type(exc).__name__}")
        if isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, (bytes, Stream)):
            result = bytes(result)
        headers = [("Content-Type", media)]
        if isinstance(result, Stream) and result.sse:
            headers.append(("Cache-Control", "no-cache"))
        if context is not _NO_CONTEXT:
            headers.extend(context.response_headers.items())
            if context.status is not None:
                return context.status, headers, result
        return 200, headers, result

    def _body(self, environ: dict) -> bytes:
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        limit = self.limit
        if length:
            try:
                size = int(length)
            except ValueError:
                raise ClientError(f"Content-Length {length!r} is not a number") from None
            if limit is not None and size > limit:
                raise ClientError(self._too_large(size), status=413)
            return stream.read(size)
        data = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise ClientError(self._too_large(len(data)), status=413)
        return data

    def _too_large(self, size: int) -> str:
        return too_large_message(size, self.env)

    def execution_parameters(self, environ: dict) -> tuple[int, list, bytes]:
        params = {
            "MaxConcurrentTransforms": self.env.max_concurrent_transforms,
            "BatchStrategy": self.env.batch_strategy,
            "MaxPayloadInMB": self.env.max_payload_mb,
        }
        try:
            custom = self.handler.execution_parameters(RequestContext(headers_of(environ), self._model_dir))
        except HANDLER_FAILURES as exc:
            log.exception("execution_parameters_fn raised")
            return 500, list(JSON_TYPE), error_body(f"execution_parameters_fn raised {type(exc).__name__}: {exc}")
        if custom:
            params.update(custom)
        return 200, list(JSON_TYPE), json.dumps(params).encode("utf-8")


_NO_CONTEXT: Any = RequestContext({})


def create_flask_app(core: Any, routes: Mapping[str, tuple[str, ...]] = ROUTES) -> Any:
    """The Flask app: the SageMaker routes (delegating to ``core``) and JSON errors for the rest.

    ``core`` has ``ping()``, ``invocations(environ)`` and ``execution_parameters(environ)``;
    ``routes`` is what the 404 / 405 messages list."""
    from flask import Flask, Response, request
    from werkzeug.exceptions import HTTPException

    app = Flask("toolkit.serving", static_folder=None)

    def respond(result: tuple[int, list, bytes]) -> Response:
        code, headers, body = result
        return Response(body, status=code, headers=headers)

    @app.route("/ping", methods=["GET"])
    def ping() -> Response:
        return respond(core.ping())

    @app.route("/invocations", methods=["POST"])
    def invocations() -> Response:
        return respond(core.invocations(request.environ))

    @app.route("/execution-parameters", methods=["GET"])
    def execution_parameters() -> Response:
        return respond(core.execution_parameters(request.environ))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        message = f"{request.method} {request.path}: {exc.name}"
        if exc.code == 405:
            allowed = routes.get(request.path, ())
            message += f"; this route accepts {', '.join(allowed)}" if allowed else ""
        elif exc.code == 404:
            message += f"; routes: {', '.join(f'{m} {p}' for p, ms in routes.items() for m in ms)}"
        allow = [(name, value) for name, value in exc.get_headers() if name == "Allow"]
        return Response(error_body(message), status=exc.code or 500, headers=allow, mimetype="application/json")

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return Response(error_body(f"internal error: {type(exc).__name__}"), status=500, mimetype="application/json")

    return app
