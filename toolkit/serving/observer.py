"""The WSGI layer around a worker's app: the access log and the request count for recycling.

One line per request (TOOLKIT_ACCESS_LOG; /ping only with TOOLKIT_LOG_PING), when the answer is
ready (a streamed one: when it ends), in the toolkit's log format:

    2026-11-29 22:26:30,530 toolkit INFO 127.0.0.1 POST /invocations 200 57 1.42ms model=model id=c0ffee

client address, method and path, status, body bytes (``-`` for a streamed answer), milliseconds
from receiving the request to its answer, the model that answered (``-`` for other routes) and the
X-Amzn-SageMaker-Inference-Id header (``-`` when absent). A request the time limit answered with 504
is logged as 504 when its handler call ends. Other attributes (``ready``, ``untimed``) are the app's.

What a line costs: through ``logging`` (caller lookup, LogRecord, formatter, a flush per line) 40 us
on this machine, a third of the echo benchmark's throughput. Formatted on the request path (the wall
clock, an f-string with a float, six environ lookups) it took 4.8 us in the running server, median,
against 3.0 us timed alone in a loop (code that runs once per request finds the caches the rest of
the request left), and cost ~9 us of server CPU per answer. So the request keeps only the line's raw
fields, a tuple of strings and two clock readings (1.2 us in the server), in a deque; the thread
that writes the lines to stderr every ``FLUSH_EVERY`` seconds formats them, ``CHUNK`` lines at a
time, letting go of the GIL between two (``os.write``), so no request waits long behind it. Lines
keep the order of the answers, and those buffered are written when the worker stops (a worker
killed by a signal loses its last lines). The status and size come from the environ, where the app
(a ``RoutedApp``) leaves them (``ANSWER_KEY``), so ``start_response`` is not wrapped: a closure, a
call and a search of the headers fewer per request.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Optional

from toolkit.serving.routes import ANSWER_KEY
from toolkit.serving.streaming import Stream

FLUSH_EVERY = 0.2  # seconds
CHUNK = 256  # lines formatted per write: the GIL is let go of between two (~0.3 ms of formatting)
LINE = "%s,%03d toolkit INFO %s %s %s %s %s %.2fms model=%s id=%s\n"
MODEL_KEY = "toolkit.model"  # set in the environ by the app that answered for a model
TIMED_OUT_KEY = "toolkit.timed_out"  # set by the server's watchdog when it answered 504 itself
ID_KEY = "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"
NO_ANSWER = ("-", "-")  # an app that left no (status, size) in the environ (not a RoutedApp)

# (answered, started) by time.perf_counter, then the line's fields as strings:
# client address, method, path, status code (or "504"), body bytes, model, inference id
Record = tuple[float, float, str, str, str, Any, Any, str, str]


class AccessLog:
    """Access records, formatted and written to stderr by a thread of their own."""

    def __init__(self) -> None:
        self._records: deque[Record] = deque()
        self.add = self._records.append  # the request's one call (deque.append: atomic, no lock)
        self._second = -1
        self._stamp = ""
        self._lock = threading.Lock()  # between the flushing thread and close()
        threading.Thread(target=self._run, name="toolkit-access-log", daemon=True).start()

    def flush(self) -> None:
        with self._lock:
            records = self._records
            count = len(records)  # records added meanwhile wait for the next flush, behind these
            offset = time.time() - time.perf_counter()
            while count:
                chunk = min(count, CHUNK)
                count -= chunk
                text = self.format([records.popleft() for _ in range(chunk)], offset)
                try:
                    sys.stderr.flush()
                    os.write(sys.stderr.fileno(), text.encode("utf-8", errors="replace"))  # lets go of the GIL
                except (OSError, ValueError):  # stderr closed
                    pass

    def format(self, records: list[Record], offset: float) -> str:
        """The lines of ``records``; ``offset``: the wall clock minus ``time.perf_counter()``."""
        lines = []
        for answered, started, address, method, path, status, size, model, ident in records:
            now = answered + offset
            second = int(now)
            if second != self._second:  # strftime once a second, not once a line
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
                self._second = second
            lines.append(LINE % (self._stamp, int((now - second) * 1000), address, method, path, status,
                                 size, (answered - started) * 1000, model, ident))
        return "".join(lines)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            self.flush()


class Observer:
    def __init__(self, app: Any, access_log: bool, log_ping: bool, recycler: Optional[Any] = None) -> None:
        self.app = app
        self.access_log = AccessLog() if access_log else None
        self._add = self.access_log.add if self.access_log is not None else None
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
        add = self._add
        if add is None or (not self.log_ping and environ.get("PATH_INFO") == "/ping"):
            return self.app(environ, start_response)
        started = perf_counter()
        result = self.app(environ, start_response)  # a RoutedApp: it leaves (status, size) in the environ
        if isinstance(result, Stream):
            self._on_close(result, environ, started)
            return result
        code, size = environ.get(ANSWER_KEY, NO_ANSWER)
        add((perf_counter(), started, environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD", "-"),
             environ.get("PATH_INFO", "-"), "504" if environ.get(TIMED_OUT_KEY) else code, size,
             environ.get(MODEL_KEY, "-"), environ.get(ID_KEY, "-")))  # record(), inlined: one call fewer
        return result

    def _on_close(self, stream: Stream, environ: dict, started: float) -> None:
        """Record a streamed answer when it ends."""
        after = stream.on_close
        add = self._add
        assert add is not None

        def closed() -> None:
            if after is not None:
                after()
            add(record(environ, started))

        stream.on_close = closed


perf_counter = time.perf_counter


def record(environ: dict, started: float) -> Record:
    """What the line of an answered request needs, read now (the environ is not kept)."""
    code, size = environ.get(ANSWER_KEY, NO_ANSWER)
    return (perf_counter(), started, environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"), "504" if environ.get(TIMED_OUT_KEY) else code, size,
            environ.get(MODEL_KEY, "-"), environ.get(ID_KEY, "-"))


def wrap(app: Any, env: Any, recycler: Optional[Any]) -> Any:
    """``app`` with the observer around it, or ``app`` itself when there is nothing to observe."""
    if not env.access_log and recycler is None:
        return app
    return Observer(app, env.access_log, env.log_ping, recycler)


__all__ = ["MODEL_KEY", "TIMED_OUT_KEY", "AccessLog", "Observer", "wrap"]
