"""Built-in server: waitress in each worker, on the socket the supervisor bound.

- The time limit (SAGEMAKER_MODEL_SERVER_TIMEOUT, seconds): the app runs on waitress's own threads
  with no hand-off; a watchdog thread answers a request that runs past the limit with 504 itself
  (the connection is then closed) and adds a thread so that the stuck one does not reduce capacity.
  When more than ``2 * threads`` requests are stuck at once, the worker asks to be replaced.
  A streamed response (``toolkit.serving.streaming.Stream``) is timed per chunk: the limit applies to
  the time to the first chunk and to each wait between chunks, not to the whole stream. A stream
  that stalls past it after its status line was sent cannot get a 504: its connection is closed
  without the last chunk, which clients report as a cut-off body.
  An app with an ``untimed(environ)`` method exempts the requests it returns True for (a multi-model
  endpoint's model loads and unloads, which take as long as ``model_fn`` takes).
- SIGTERM: stop accepting, wait for in-flight requests to be answered (until 2 s before the
  supervisor's TOOLKIT_SERVE_STOP_SECONDS deadline), return. Answers given while stopping carry
  ``Connection: close``, and the worker waits until its connections are closed or have been idle
  for ``IDLE_AFTER`` seconds, so that a kept-alive client reconnects (to another worker, e.g. the
  replacement of a recycled one) rather than sending its next request into a closing socket.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

from toolkit.hookspecs import hookimpl
from toolkit.serving.observer import TIMED_OUT_KEY
from toolkit.serving.streaming import Stream

log = logging.getLogger("toolkit")
ACCEPT_BATCH = 64  # at most this many connections accepted per turn of a worker's event loop
IDLE_AFTER = 0.1  # seconds: while stopping, a kept-alive connection this quiet is closed


class Watchdog:
    """Tracks the requests in progress on this worker's threads and times them out."""

    def __init__(self, server: Any, timeout: float, threads: int) -> None:
        self.server = server
        self.timeout = timeout
        self.threads = threads
        self.active: dict[int, list] = {}  # thread id -> [started, channel, timed_out, streaming]
        self.stuck = 0
        self.lock = threading.Lock()
        body = json.dumps({"message": f"the model did not answer within {timeout:g} s "
                                      f"(SAGEMAKER_MODEL_SERVER_TIMEOUT)"}).encode()
        self.response = (b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        active = self.active
        get_ident = threading.get_ident
        monotonic = time.monotonic
        untimed = getattr(app, "untimed", None)  # e.g. a multi-model endpoint's POST /models (a model load)

        def timed(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if untimed is not None and untimed(environ):
                return app(environ, start_response)
            check = environ.get("waitress.client_disconnected")
            entry = [monotonic(), getattr(check, "__self__", None), False, False, environ]
            key = get_ident()
            active[key] = entry
            try:
                result = app(environ, start_response)
            finally:
                if active.get(key) is entry:
                    del active[key]
                if entry[2]:
                    self._recovered()
            if isinstance(result, Stream) and not entry[2]:
                return self._timed_stream(result, entry[1])
            return result

        return timed

    def _timed_stream(self, stream: Any, channel: Any) -> Iterator[bytes]:
        """The chunks of ``stream``, each wait for one timed like a request."""
        active = self.active
        key = threading.get_ident()
        try:
            while True:
                entry = [time.monotonic(), channel, False, True]
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

    def start(self) -> None:
        if self.timeout > 0:
            threading.Thread(target=self._watch, name="toolkit-watchdog", daemon=True).start()

    def _watch(self) -> None:
        tick = min(0.1, self.timeout / 4)
        while True:
            time.sleep(tick)
            now = time.monotonic()
            for key, entry in list(self.active.items()):
                if now - entry[0] > self.timeout and not entry[2]:
                    self._time_out(key, entry)

    def _time_out(self, key: int, entry: list) -> None:
        channel = entry[1]
        with self.lock:
            entry[2] = True
            if len(entry) > 4:
                entry[4][TIMED_OUT_KEY] = True  # the access log and the metrics count it as the 504 it was
            self.active.pop(key, None)
            self.stuck += 1
            stuck = self.stuck
            self.server.task_dispatcher.set_thread_count(self.threads + stuck)
        streaming = entry[3]
        log.error("a request ran past SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs%s (%d request(s) still running "
                  "in the handler)", self.timeout,
                  " waiting for its next chunk: connection closed" if streaming else ": answered 504", stuck)
        if channel is not None:
            try:
                with channel.requests_lock:
                    if not streaming:  # a stream's status line is out already: only closing is left
                        channel.write_soon(self.response)
                    channel.close_when_flushed = True
                self.server.pull_trigger()
            except Exception:  # the client is gone: nothing to answer
                log.debug("could not send the 504", exc_info=True)
        if stuck > 2 * self.threads:
            log.error("worker %d: %d requests stuck in the handler: asking to be replaced", os.getpid(), stuck)
            os.kill(os.getpid(), signal.SIGTERM)

    def _recovered(self) -> None:
        with self.lock:
            self.stuck -= 1
            self.server.task_dispatcher.set_thread_count(self.threads + self.stuck)
        log.warning("a request that timed out has finished in the handler after all")


def _busy(server: Any) -> bool:
    for channel in list(server._map.values()):
        if channel is server:
            continue
        if getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0):
            return True
    return False


def _bound_connections(server: Any, env: Any) -> None:
    """Time out slow requests, refuse oversized bodies readably (toolkit.serving.connections)."""
    from toolkit.serving import connections
    from toolkit.serving.app import too_large_message

    limits = connections.Limits(env, lambda size: too_large_message(size, env))
    server.channel_class = connections.make_channel_class(limits)
    maintenance = server.maintenance  # waitress's: closes idle connections (channel_timeout)

    def maintain(now: float) -> None:
        maintenance(now)
        connections.sweep(server, time.monotonic())

    server.maintenance = maintain


def _recently_used(server: Any) -> bool:
    """Whether a connection is still open and was used within ``IDLE_AFTER`` seconds."""
    cutoff = time.time() - IDLE_AFTER
    return any(channel is not server and getattr(channel, "last_activity", 0) > cutoff
               for channel in list(server._map.values()))


def _close_after_answering(server: Any) -> None:
    """While stopping: each answer still to come closes its connection (``Connection: close``)."""
    from waitress.task import WSGITask

    class ClosingTask(WSGITask):
        def build_response_header(self) -> Any:
            self.set_close_on_finish()
            return super().build_response_header()

    for channel in list(server._map.values()):
        if channel is not server and hasattr(channel, "task_class"):
            channel.task_class = ClosingTask


def _balance(server: Any, app: Any, slot: Any) -> None:
    """Poll the listening socket only while ``slot`` says this worker is among the least loaded.

    Without it, wrk's 16 kept-alive connections split 8/8 over 2 workers only 1 run in 5 and 12/4
    or worse 1 in 3: p99 ~2.8x higher (numbers in toolkit.serving.balance).
    """
    accepts = server.readable  # waitress's own check (connection limit, idle channel clean-up)
    channels = server.active_channels

    def readable() -> bool:
        return accepts() and slot.may_accept(len(channels), getattr(app, "ready", True))

    server.readable = readable
    accept_one = server.handle_accept

    def handle_accept() -> None:
        """Accept while connections are waiting and the table allows: one accept per turn of the
        event loop, whose every turn polls all open connections, took 1.2 s for 1,000 at once."""
        for _ in range(ACCEPT_BATCH):
            before = len(channels)
            accept_one()
            if len(channels) == before or not readable():
                return

    server.handle_accept = handle_accept
    wake_fd = getattr(slot, "wake_fd", None)
    if wake_fd is not None:
        _watch_wakes(wake_fd, server._map)


def _watch_wakes(fd: int, socket_map: dict) -> None:
    """Poll the slot's wake pipe (toolkit.serving.balance) in the event loop: a write there ends the
    loop's wait, so that this worker checks at once whether to accept again."""
    from waitress import wasyncore

    class Wake(wasyncore.file_dispatcher):
        def readable(self) -> bool:
            return True

        def writable(self) -> bool:
            return False

        def handle_read(self) -> None:
            try:
                os.read(self.socket.fd, 4096)
            except OSError:
                pass

    Wake(fd, map=socket_map)


@hookimpl(trylast=True)
def toolkit_serve(app: Any, sock: Any, env: Any, slot: Any) -> Optional[bool]:
    from waitress import wasyncore
    from waitress.server import create_server

    from toolkit.serving import connections

    limit = env.max_payload_bytes
    server = create_server(
        app,
        sockets=[sock],
        threads=env.threads,
        ident="sagemaker-toolkit",
        # the exact limit is the channel's (toolkit.serving.connections); waitress's own counts chunked
        # bodies with their framing, so it only bounds what framing may cost
        max_request_body_size=(limit * 8 + (1 << 20)) if limit else (1 << 40),
        channel_timeout=max(math.ceil(env.idle_seconds), 1) if env.idle_seconds > 0 else 1 << 40,
        cleanup_interval=1,  # idle and slow connections are checked every second
        connection_limit=connections.connection_limit(),
        expose_tracebacks=False,
        clear_untrusted_proxy_headers=True,
        asyncore_use_poll=True,
        backlog=1024,
        channel_request_lookahead=1,  # polled for its next request while one runs (toolkit.serving.connections)
    )
    _bound_connections(server, env)
    _balance(server, app, slot)
    watchdog = Watchdog(server, env.timeout, env.threads)
    if env.timeout > 0:
        server.application = watchdog.wrap(app)  # the tasks call server.application
    watchdog.start()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under load is normal
    done = threading.Event()

    def drain() -> None:
        deadline = time.monotonic() + max(env.stop_seconds - 2.0, 0.5)
        while time.monotonic() < deadline and (watchdog.active or _busy(server) or _recently_used(server)):
            time.sleep(0.02)
        done.set()
        server.pull_trigger()

    def on_term(_signum: int, _frame: object) -> None:
        if getattr(on_term, "called", False):
            return
        on_term.called = True  # type: ignore[attr-defined]
        slot.leave()
        server.accepting = False
        server.del_channel()
        server.socket.close()
        _close_after_answering(server)
        threading.Thread(target=drain, name="toolkit-drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    while not done.is_set():
        wasyncore.loop(timeout=0.2, map=server._map, use_poll=True, count=1)
    return True
