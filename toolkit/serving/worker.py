"""One worker process's part in serving: what ``toolkit_serve`` gets, so a server only maps HTTP.

The supervisor forks workers that share one listening socket; in each, a server plugin answers HTTP
with the WSGI app. What every server must also do, and what the toolkit owns, is here:

- connection balancing: ask ``may_accept(open_connections)`` before each accept (the shared table
  of toolkit.serving.balance: the least loaded worker takes the connection);
- the time limit: serve ``timed_app(...)``, which answers a request that runs past
  SAGEMAKER_MODEL_SERVER_TIMEOUT with 504. A server that can write on a request's connection from
  another thread passes ``abort`` (waitress does: the handler runs on the server's own thread, no
  hand-off); without it, each request runs on a thread of the worker's and the server's thread
  gets the 504 when the time is up;
- stopping: ``on_stop(callback)`` is called on SIGTERM (stop accepting there), ``drain(busy)``
  waits for the requests in progress until 2 s before the supervisor's SIGKILL.

A request that times out keeps its thread (Python cannot kill one): the watchdog adds a thread
for it (``set_threads``), and a worker with more than ``2 * threads`` stuck asks to be replaced.
A streamed answer is timed per chunk: the time to its first chunk and each wait between chunks
(handed off: only the time to the answer).
An app with an ``untimed(environ)`` method exempts the requests it returns True for (a
multi-model endpoint's model loads and unloads, which take as long as ``model_fn`` takes).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

from toolkit.environment import ServingEnv
from toolkit.serving.observer import TIMED_OUT_KEY
from toolkit.serving.streaming import Stream

log = logging.getLogger("toolkit")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
Abort = Callable[[dict, bytes], None]  # (the request's environ, the bytes to send before closing)


class Worker:
    """The app, the listening socket, the settings and the duties of one worker process."""

    def __init__(self, app: Any, sock: socket.socket, env: ServingEnv, slot: Any) -> None:
        self.app = app  # the WSGI app (attributes such as ``ready`` are the app's)
        self.sock = sock  # listening already, shared with the other workers
        self.env = env
        self.threads = env.threads  # request threads to run: with dynamic batching more than TOOLKIT_SERVER_THREADS
        self.slot = slot  # toolkit.serving.balance.Slot
        self.wake_fd: Optional[int] = getattr(slot, "wake_fd", None)  # readable: check may_accept() again now
        self.stopping = False
        self.watchdog: Optional[Watchdog] = None
        self._on_stop: list[Callable[[], None]] = []
        self._deadline = 0.0

    # -- connections ---------------------------------------------------------------------------

    def may_accept(self, open_connections: int) -> bool:
        """Whether to accept a connection now, this worker holding ``open_connections``; ask before each
        accept (it is cheap). False while a less loaded worker should take it, and once stopping."""
        return not self.stopping and self.slot.may_accept(open_connections, getattr(self.app, "ready", True))

    def shed(self) -> int:
        """How many connections to close after their next answer (``Connection: close``), because this
        worker has held more than its share for a while (toolkit.serving.balance); mostly 0. Asking
        takes them: ask after ``may_accept``."""
        excess = getattr(self.slot, "excess", 0)
        if excess:
            self.slot.excess = 0
        return excess

    # -- the time limit ------------------------------------------------------------------------

    def timed_app(self, abort: Optional[Abort] = None,
                  set_threads: Optional[Callable[[int], None]] = None) -> WSGIApp:
        """The app held to SAGEMAKER_MODEL_SERVER_TIMEOUT (the app itself when it is 0).

        ``abort(environ, response)`` sends ``response`` (a whole 504 answer; empty for a stream whose
        status line is out) on the connection of request ``environ`` and closes it; it is called from
        the watchdog's thread. ``set_threads(count)`` makes the server run ``count`` request threads.
        Without ``abort`` the requests are handed to threads of the worker's own."""
        if self.env.timeout <= 0:
            return self.app
        if abort is None:  # the server's thread times its own request out: no watching thread
            self.watchdog = Watchdog(self.env.timeout, self.threads, None, None)
            return self.watchdog.handed_off(self.app, _Runner())
        self.watchdog = Watchdog(self.env.timeout, self.threads, abort, set_threads)
        self.watchdog.start()
        return self.watchdog.wrap(self.app)

    # -- stopping ------------------------------------------------------------------------------

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the worker is told to stop (SIGTERM, in the main thread): stop
        accepting there and start draining. Until a server asks, SIGTERM ends the process at once."""
        if not self._on_stop:
            signal.signal(signal.SIGTERM, self._stop)
        self._on_stop.append(callback)

    def _stop(self, _signum: int, _frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._deadline = time.monotonic() + max(self.env.stop_seconds - 2.0, 0.5)
        self.slot.leave()  # the other workers stop leaving connections to this one
        for callback in self._on_stop:
            callback()

    def in_flight(self) -> int:
        """Requests in progress under the time limit (streams: while a chunk is awaited)."""
        return len(self.watchdog.active) if self.watchdog is not None else 0

    def drain(self, busy: Callable[[], bool] = lambda: False) -> None:
        """Wait until no request is in progress and ``busy()`` (the server's own view: answers not yet
        sent, connections still in use) is False, at most until 2 s before the supervisor's SIGKILL."""
        deadline = self._deadline or time.monotonic() + max(self.env.stop_seconds - 2.0, 0.5)
        while time.monotonic() < deadline and (self.in_flight() or busy()):
            time.sleep(0.02)


class Watchdog:
    """Tracks the requests in progress on this worker's threads and times them out."""

    def __init__(self, timeout: float, threads: int, abort: Optional[Abort],
                 set_threads: Optional[Callable[[int], None]]) -> None:
        self.timeout = timeout
        self.threads = threads
        self.abort = abort
        self.set_threads = set_threads
        self.active: dict[int, list] = {}  # id(entry) -> entry: [started, environ, timed_out, streaming]
        self.stuck = 0
        self.lock = threading.Lock()
        body = json.dumps({"message": f"the model did not answer within {timeout:g} s "
                                      f"(SAGEMAKER_MODEL_SERVER_TIMEOUT)"}).encode()
        self.body = body
        self.response = (b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app`` on the server's own threads, watched (the watchdog aborts what runs too long)."""
        active = self.active
        monotonic = time.monotonic
        untimed = getattr(app, "untimed", None)  # e.g. a multi-model endpoint's POST /models (a model load)

        def timed(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if untimed is not None and untimed(environ):
                return app(environ, start_response)
            entry = [monotonic(), environ, False, False]
            key = id(entry)  # not the thread: requests waiting for a batch nest on the event loop's thread
            active[key] = entry
            try:
                result = app(environ, start_response)
            finally:
                if active.get(key) is entry:
                    del active[key]
                if entry[2]:
                    self._recovered()
            if isinstance(result, Stream) and not entry[2]:
                return self._timed_stream(result, environ)
            return result

        return timed

    def _timed_stream(self, stream: Any, environ: dict) -> Iterator[bytes]:
        """The chunks of ``stream``, each wait for one timed like a request."""
        active = self.active
        try:
            while True:
                entry = [time.monotonic(), environ, False, True]
                key = id(entry)
                active[key] = entry
                try:
                    chunk = next(stream)
                except StopIteration:
                    return
                finally:
                    if active.get(key) is entry:
                        del active[key]
                    if entry[2]:
                        self._recovered()
                yield chunk
        finally:
            stream.close()

    def handed_off(self, app: WSGIApp, runner: _Runner) -> WSGIApp:
        """``app`` on the runner's threads; the server's thread waits for it until the time limit."""
        untimed = getattr(app, "untimed", None)

        def timed(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if untimed is not None and untimed(environ):
                return app(environ, start_response)
            done = threading.Event()
            box: dict = {}

            def respond(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
                box["start"] = (status, headers)
                return _no_write

            def run() -> None:
                try:
                    box["result"] = app(environ, respond)
                except BaseException as exc:  # handed back to the server's thread
                    box["error"] = exc
                with self.lock:
                    done.set()
                    late = box.get("late")
                if late:
                    self._recovered()

            entry = [time.monotonic(), environ, False, False]
            key = id(entry)
            self.active[key] = entry
            try:
                runner.submit(run)
                finished = done.wait(self.timeout)
                with self.lock:
                    finished = done.is_set()
                    box["late"] = not finished
            finally:
                self.active.pop(key, None)
            if finished:
                if "error" in box:
                    raise box["error"]
                start_response(*box["start"])
                return box["result"]
            self._time_out(key, entry, handed_off=True)
            start_response("504 Gateway Timeout", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(self.body)))])
            return (self.body,)

        return timed

    def start(self) -> None:
        threading.Thread(target=self._watch, name="toolkit-watchdog", daemon=True).start()

    def _watch(self) -> None:
        tick = min(0.1, self.timeout / 4)
        while True:
            time.sleep(tick)
            now = time.monotonic()
            for key, entry in list(self.active.items()):
                if now - entry[0] > self.timeout and not entry[2]:
                    self._time_out(key, entry)

    def _time_out(self, key: int, entry: list, handed_off: bool = False) -> None:
        environ, streaming = entry[1], entry[3]
        with self.lock:
            entry[2] = True
            if not streaming:
                environ[TIMED_OUT_KEY] = True  # the access log and the metrics count it as the 504 it was
            self.active.pop(key, None)
            self.stuck += 1
            stuck = self.stuck
            if self.set_threads is not None:
                self.set_threads(self.threads + stuck)
        log.error("a request ran past SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs%s (%d request(s) still running "
                  "in the handler)", self.timeout,
                  " waiting for its next chunk: connection closed" if streaming else ": answered 504", stuck)
        if not handed_off and self.abort is not None:
            try:
                self.abort(environ, b"" if streaming else self.response)  # a stream's status line is out already
            except Exception:  # the client is gone: nothing to answer
                log.debug("could not send the 504", exc_info=True)
        if stuck > 2 * self.threads:
            log.error("worker %d: %d requests stuck in the handler: asking to be replaced", os.getpid(), stuck)
            os.kill(os.getpid(), signal.SIGTERM)

    def _recovered(self) -> None:
        with self.lock:
            self.stuck -= 1
            if self.set_threads is not None:
                self.set_threads(self.threads + self.stuck)
        log.warning("a request that timed out has finished in the handler after all")


def _no_write(_data: bytes) -> None:
    raise RuntimeError("the toolkit's apps return their body; they do not call write()")


class _Runner:
    """Threads for handed-off requests: one more whenever none is idle (a stuck one keeps its own)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:
            threading.Thread(target=self._run, name="toolkit-request", daemon=True).start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


__all__ = ["Watchdog", "Worker"]
