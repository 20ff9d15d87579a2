"""Built-in server: waitress in each worker, on the socket the supervisor bound.

The worker (``toolkit.serving.worker.Worker``) owns the time limit, the balancing and stopping;
this plugin connects them to waitress:

- Requests: the event loop's thread answers them itself and leaves the loop to another thread when
  one runs long or waits in a batch (``toolkit.serving.eventloop``, the server's task dispatcher);
  with TOOLKIT_LOOP_HANDOFF_MS=0, waitress's own dispatcher hands every request to a thread.
- The time limit (SAGEMAKER_MODEL_SERVER_TIMEOUT): the app runs on the server's own threads with no
  hand-off; when the worker's watchdog times a request out, ``_abort`` writes the 504 on its channel
  (the connection is then closed) and the server may run one request more for the stuck one.
- SIGTERM: stop accepting, wait for in-flight requests to be answered (``worker.drain``), return.
  Answers given while stopping carry ``Connection: close``, and the worker waits until its
  connections are closed or have been idle for ``IDLE_AFTER`` seconds, so that a kept-alive client
  reconnects (to another worker, e.g. the replacement of a recycled one) rather than sending its
  next request into a closing socket.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any, Optional

from toolkit.hookspecs import hookimpl
from toolkit.serving.eventloop import EventLoop

log = logging.getLogger("toolkit")
ACCEPT_BATCH = 64  # at most this many connections accepted per turn of a worker's event loop
IDLE_AFTER = 0.1  # seconds: while stopping, a kept-alive connection this quiet is closed


def _abort(server: Any, environ: dict, response: bytes) -> None:
    """Send ``response`` on the channel of the request ``environ`` and close it (the watchdog's thread)."""
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    if channel is None:
        return
    with channel.requests_lock:
        if response:
            channel.write_soon(response)
        channel.close_when_flushed = True
    server.pull_trigger()


def _environ(request: Any) -> dict:
    """The part of a WSGI environ that says what a parsed request asks for (method, path, headers)."""
    environ = {"HTTP_" + name: value for name, value in request.headers.items()}
    environ.update(REQUEST_METHOD=request.command, PATH_INFO=request.path or "")
    return environ


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
    from toolkit.serving.connections import OneSendTask

    class ClosingTask(OneSendTask):
        def build_response_header(self) -> Any:
            self.set_close_on_finish()
            return super().build_response_header()

    for channel in list(server._map.values()):
        if channel is not server and hasattr(channel, "task_class"):
            channel.task_class = ClosingTask


def _balance(server: Any, worker: Any) -> None:
    """Poll the listening socket only while the worker says it is among the least loaded.

    Without it, wrk's 16 kept-alive connections split 8/8 over 2 workers only 1 run in 5 and 12/4
    or worse 1 in 3: p99 ~2.8x higher (numbers in toolkit.serving.balance).
    """
    accepts = server.readable  # waitress's own check (connection limit, idle channel clean-up)
    channels = server.active_channels
    shedding = server.channel_class.shedding

    def readable() -> bool:
        if not accepts():
            return False
        accept = worker.may_accept(len(channels))
        if not accept:
            shedding.left = worker.shed() or shedding.left
        return accept

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
    if worker.wake_fd is not None:
        _watch_wakes(worker.wake_fd, server._map)


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
def toolkit_serve(worker: Any) -> Optional[bool]:
    from waitress import wasyncore
    from waitress.server import create_server

    from toolkit.serving import connections

    env = worker.env
    limit = env.max_payload_bytes
    server = create_server(
        worker.app,
        sockets=[worker.sock],
        threads=worker.threads if env.loop_handoff_ms <= 0 else 1,  # (the event loop replaces its dispatcher)
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
    loop: Optional[EventLoop] = None
    if env.loop_handoff_ms > 0:  # the event loop answers requests itself (toolkit.serving.eventloop)
        server.task_dispatcher.shutdown()
        loop = server.task_dispatcher = EventLoop(server, worker.threads, env.loop_handoff_ms / 1000,
                                                  wasyncore.poll2)
        runs_long = getattr(worker.app, "runs_long", None)  # a multi-model endpoint's loads, unbatched models
        if runs_long is not None:
            loop.slow = lambda channel: bool(channel.requests) and runs_long(_environ(channel.requests[0]))
    _balance(server, worker)
    server.application = worker.timed_app(  # the tasks call server.application
        abort=lambda environ, response: _abort(server, environ, response),
        set_threads=server.task_dispatcher.set_thread_count)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" under load is normal
    done = loop.done if loop is not None else threading.Event()

    def drain() -> None:
        worker.drain(lambda: _busy(server) or _recently_used(server))
        done.set()
        server.pull_trigger()

    def stop_accepting() -> None:
        server.accepting = False
        server.del_channel()
        server.socket.close()
        _close_after_answering(server)
        threading.Thread(target=drain, name="toolkit-drain", daemon=True).start()

    if loop is not None:
        worker.on_stop(lambda: loop.call_soon(stop_accepting))  # the socket map is the leader's
        loop.run()
        return True
    worker.on_stop(stop_accepting)
    while not done.is_set():
        wasyncore.loop(timeout=0.2, map=server._map, use_poll=True, count=1)
    return True
