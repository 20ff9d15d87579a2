"""The WSGI layer around a worker's app: the access log and the request count for recycling.

One line per request on the ``toolkit.access`` logger (TOOLKIT_ACCESS_LOG; /ping only with
TOOLKIT_LOG_PING), written when the answer is ready (a streamed one: when it ends):

    127.0.0.1 POST /invocations 200 57 1.42ms model=model id=c0ffee

client address, method and path, status, body bytes (``-`` for a streamed answer), milliseconds
from receiving the request to its answer, the model that answered (``-`` for other routes) and the
X-Amzn-SageMaker-Inference-Id header (``-`` when absent). A request the time limit answered with 504
is logged as 504 when its handler call ends. Other attributes (``ready``, ``untimed``) are the app's.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Optional

from toolkit.serving.streaming import Stream

access = logging.getLogger("toolkit.access")
MODEL_KEY = "toolkit.model"  # set in the environ by the app that answered for a model
TIMED_OUT_KEY = "toolkit.timed_out"  # set by the server's watchdog when it answered 504 itself


class Observer:
    def __init__(self, app: Any, access_log: bool, log_ping: bool, recycler: Optional[Any] = None) -> None:
        self.app = app
        self.access_log = access_log
        self.log_ping = log_ping
        self.recycler = recycler

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.recycler is not None:
            self.recycler.count()
        if not self.access_log or (not self.log_ping and environ.get("PATH_INFO") == "/ping"):
            return self.app(environ, start_response)
        started = time.perf_counter()
        seen: list = [None, ()]

        def respond(status: str, headers: list, exc_info: Any = None) -> Any:
            seen[0], seen[1] = status, headers
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, respond)
        if isinstance(result, Stream):
            after = result.on_close

            def closed() -> None:
                if after is not None:
                    after()
                line(environ, seen, "-", started)

            result.on_close = closed
            return result
        size = "-"
        for name, value in reversed(seen[1]):
            if name == "Content-Length":
                size = value
                break
        line(environ, seen, size, started)
        return result


def line(environ: dict, seen: list, size: str, started: float) -> None:
    status = "504" if environ.get(TIMED_OUT_KEY) else (seen[0] or "-")[:3]
    access.info("%s %s %s %s %s %.2fms model=%s id=%s", environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-"), status, size,
                (time.perf_counter() - started) * 1000, environ.get(MODEL_KEY, "-"),
                environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID", "-"))


def wrap(app: Any, env: Any, recycler: Optional[Any]) -> Any:
    """``app`` with the observer around it, or ``app`` itself when there is nothing to observe."""
    if not env.access_log and recycler is None:
        return app
    return Observer(app, env.access_log, env.log_ping, recycler)


__all__ = ["MODEL_KEY", "TIMED_OUT_KEY", "Observer", "wrap"]
