"""The WSGI layer around a worker's app: the access log and the request count for recycling.

One line per request (TOOLKIT_ACCESS_LOG; /ping only with TOOLKIT_LOG_PING), when the answer is
ready (a streamed one: when it ends), in the toolkit's log format:

    2026-11-29 22:26:30,530 toolkit INFO 127.0.0.1 POST /invocations 200 57 1.42ms model=model id=c0ffee

client address, method and path, status, body bytes (``-`` for a streamed answer), milliseconds
from receiving the request to its answer, the model that answered (``-`` for other routes) and the
X-Amzn-SageMaker-Inference-Id header (``-`` when absent). A request the time limit answered with 504
is logged as 504 when its handler call ends. Other attributes (``ready``, ``untimed``) are the app's.

Why not through ``logging``: a line through a logger (caller lookup, LogRecord, formatter, a flush per
line) cost 40 us on this machine, a third of the echo benchmark's throughput. ``AccessLog`` formats
the line itself (the timestamp made once a second) and a thread writes the lines to stderr every
``FLUSH_EVERY`` seconds, and when the worker stops; a worker killed by a signal loses its last lines.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Iterable, Optional

from toolkit.serving.streaming import Stream

FLUSH_EVERY = 0.2  # seconds
MODEL_KEY = "toolkit.model"  # set in the environ by the app that answered for a model
TIMED_OUT_KEY = "toolkit.timed_out"  # set by the server's watchdog when it answered 504 itself


class AccessLog:
    """Buffered access lines, written to stderr by a thread of their own."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""
        self._lock = threading.Lock()  # between the flushing thread and close()
        threading.Thread(target=self._run, name="toolkit-access-log", daemon=True).start()

    def write(self, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a line
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            self._second = second
        self._lines.append(f"{self._stamp},{int((now - second) * 1000):03d} toolkit INFO {message}\n")

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []  # list swap: a line appended meanwhile lands in one or the other
            if lines:
                try:
                    sys.stderr.flush()
                    os.write(sys.stderr.fileno(), "".join(lines).encode("utf-8", errors="replace"))
                except (OSError, ValueError):  # stderr closed
                    pass

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            self.flush()


class Observer:
    def __init__(self, app: Any, access_log: bool, log_ping: bool, recycler: Optional[Any] = None) -> None:
        self.app = app
        self.access_log = AccessLog() if access_log else None
        self.log_ping = log_ping
        self.recycler = recycler

    def close(self) -> None:
        """The worker is stopping: write what is buffered."""
        if self.access_log is not None:
            self.access_log.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.recycler is not None:
            self.recycler.count()
        lines = self.access_log
        if lines is None or (not self.log_ping and environ.get("PATH_INFO") == "/ping"):
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
                line(lines, environ, seen, "-", started)

            result.on_close = closed
            return result
        size = "-"
        for name, value in reversed(seen[1]):
            if name == "Content-Length":
                size = value
                break
        line(lines, environ, seen, size, started)
        return result


def line(lines: AccessLog, environ: dict, seen: list, size: str, started: float) -> None:
    status = "504" if environ.get(TIMED_OUT_KEY) else (seen[0] or "-")[:3]
    lines.write(f"{environ.get('REMOTE_ADDR', '-')} {environ.get('REQUEST_METHOD', '-')} "
                f"{environ.get('PATH_INFO', '-')} {status} {size} {(time.perf_counter() - started) * 1000:.2f}ms "
                f"model={environ.get(MODEL_KEY, '-')} id={environ.get('HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID', '-')}")


def wrap(app: Any, env: Any, recycler: Optional[Any]) -> Any:
    """``app`` with the observer around it, or ``app`` itself when there is nothing to observe."""
    if not env.access_log and recycler is None:
        return app
    return Observer(app, env.access_log, env.log_ping, recycler)


__all__ = ["MODEL_KEY", "TIMED_OUT_KEY", "AccessLog", "Observer", "wrap"]
