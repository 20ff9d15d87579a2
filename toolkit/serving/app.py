"""The WSGI application of a single-model endpoint: /ping, /invocations, /execution-parameters.

The routes are the table in ``toolkit.serving.routes`` (SAGEMAKER_ROUTES): each is answered straight
from the WSGI environ (no Flask request objects, no hook calls, codecs looked up once), which is what
makes the server fast; anything else goes to the Flask app the table builds (404, 405, OPTIONS).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Optional

from toolkit.environment import ServingEnv
from toolkit.errors import ClientError, ToolkitError
from toolkit.serving import batching, heap
from toolkit.serving.context import MAX_CUSTOM_ATTRIBUTES, RequestContext, headers_of
from toolkit.serving.handler import HANDLER_FAILURES, Handler
from toolkit.serving.observer import MODEL_KEY, TIMED_OUT_KEY
from toolkit.serving.routes import JSON_TYPE, RoutedApp, error_body, read_body, status_line
from toolkit.serving.streaming import EVENT_STREAM, Stream, is_stream, split_event_stream
from toolkit.serving.streaming import start as start_stream

log = logging.getLogger("toolkit")
perf_counter = time.perf_counter


def too_large_message(size: Optional[int], env: ServingEnv) -> str:
    """The 413 message for a body of ``size`` bytes (None: a chunked body, its size not known yet)."""
    what = f"the request body has {size} bytes, more" if size is not None else "the chunked request body is larger"
    return f"{what} than SAGEMAKER_MAX_PAYLOAD_IN_MB={env.max_payload_mb} allows ({env.max_payload_bytes} bytes)"


class ServingApp(RoutedApp):
    """The WSGI callable every worker serves."""

    def __init__(self, handler: Handler, env: ServingEnv, model_dir: Optional[str] = None,
                 model_name: str = "model", metrics: Any = None) -> None:
        super().__init__()
        self.handler = handler
        self.env = env
        self.limit = env.max_payload_bytes
        self.inflight = 0
        self._count_lock = threading.Lock()
        self._model_dir = model_dir if model_dir is not None else str(env.model_dir)
        self.model_name = model_name  # a multi-model endpoint's name for it; "model" otherwise
        self.ready = False  # set once the model is loaded in this process
        self.metrics = metrics  # toolkit.serving.metrics.Metrics when TOOLKIT_METRICS_PORT is set
        self.batcher = batching.attach(handler, env, self._observe_batch if metrics is not None else None,
                                       model_name)
        self._answered = None  # Metrics.answered: the request's one call when metrics are on
        if metrics is not None:
            self._answered = metrics.answered
            metrics.track(model_name, self)  # its ``inflight`` is the model's in-flight gauge

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
            heap.settle(self.env.gc_freeze)
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

    # -- routes -------------------------------------------------------------------------------

    def ping(self, environ: dict) -> tuple[int, list, bytes]:
        if self.ready:
            return 200, [], b""
        return 503, list(JSON_TYPE), error_body(self.handler.problem or "the model is loading")

    def invocations(self, environ: dict) -> tuple[int, list, Any]:
        """The answer to POST /invocations, counted in flight (a stream until it is closed) and in the metrics."""
        environ[MODEL_KEY] = self.model_name
        with self._count_lock:
            self.inflight += 1
        answered = self._answered
        started = perf_counter()
        body: Any = b""
        code = 500
        try:
            code, headers, body = self.answer(environ)
        finally:
            if not isinstance(body, Stream):  # a stream counts as in flight until it is closed
                self._done()
                if answered is not None:
                    answered((self.model_name, 504 if environ.get(TIMED_OUT_KEY) else code, perf_counter() - started))
        if isinstance(body, Stream):
            if answered is None:
                body.on_close = self._done
            else:
                def closed() -> None:
                    self._done()
                    answered((self.model_name, 504 if environ.get(TIMED_OUT_KEY) else code, perf_counter() - started))

                body.on_close = closed
        return code, headers, body

    def answer(self, environ: dict) -> tuple[int, list, Any]:
        """What the handler answers to POST /invocations: (status, headers, bytes or a ``Stream``)."""
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
        return read_body(environ, self.limit, self._too_large)

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


__all__ = ["JSON_TYPE", "ServingApp", "error_body", "status_line", "too_large_message"]
