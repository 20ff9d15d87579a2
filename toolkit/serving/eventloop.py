"""A waitress worker's event loop, run by whichever of its threads is free: the loop answers requests itself.

Waitress's own design hands every parsed request from the event-loop thread to a request thread. Both
need the GIL, so each request costs two thread wake-ups and, under load, waits for the GIL's 5 ms
switch interval behind the other threads: that hand-off was the p99 tail against gunicorn's sync
workers (docs/serving.md#the-tail), and with torch, whose every operation releases the GIL, it cost
more than the model.

Here the thread that runs the event loop (the *leader*) answers each request itself, between two
polls, as a single-threaded server would. The other threads (*followers*) wait. The loop moves to a
follower, and the request stays where it is, when the leader's request

- has run for ``handoff`` seconds (TOOLKIT_LOOP_HANDOFF_MS; the main thread looks every half of it),
  so that a slow model, a stream or a model load never holds the worker's other connections, /ping
  among them, for longer than that;
- is about to wait (``release()``, called by dynamic batching before a request joins a batch), so
  that the requests of one batch are parsed and decoded while the first of them waits.

A relieved thread finishes its request as waitress's request threads do (the new leader sends what
it wrote), then becomes a follower. At most ``threads`` requests run at once (TOOLKIT_SERVER_THREADS,
raised by one for each request stuck past its 504): while that many run on relieved threads, the
leader polls (reads, sends, accepts, times out slow connections) but starts no request. The loop
can always move, so that a leader whose answer waits for the loop to send it (waitress's writer
blocks above its buffer limit) is relieved like any other.

The main thread runs no request: it keeps the signal handlers prompt, watches the leader and runs
the stop. Everything that touches the socket map (the stop's closing of the listening socket
included) runs on the leader's thread (``call_soon``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Optional

_current: Optional[EventLoop] = None  # the worker's loop (one per process)
_local = threading.local()  # skipped: a wake-up was left out during this thread's request (skip_wakeup)


def release() -> None:
    """Called by a request's thread before it waits for long (a batch): if that thread runs the
    event loop, another thread takes the loop over first. Does nothing anywhere else."""
    loop = _current
    if loop is not None and loop.leader == threading.get_ident():
        loop.relieve(None)


class EventLoop:
    """The task dispatcher of one waitress server (``server.task_dispatcher``) and its loop's threads."""

    def __init__(self, server: Any, threads: int, handoff: float, poll: Callable[[float, dict], None]) -> None:
        self.server = server
        self.handoff = handoff
        self._poll = poll  # waitress's wasyncore.poll2
        self._pending: deque = deque()  # channels with a request to answer, in arrival order
        self._soon: deque = deque()  # callables to run on the leader's thread
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)  # followers wait here for the loop
        self.leader: Optional[int] = None  # the thread running the loop (None: a follower may take it)
        self._started = 0.0  # when the leader's request began (0.0: the leader is not in a request)
        self._cap = threads  # requests that may run at once
        self._running = 0  # requests running on threads the loop has left
        self._waiting = 0  # followers waiting for the loop
        self.done = threading.Event()

    # -- waitress's task dispatcher -------------------------------------------------------------

    def add_task(self, channel: Any) -> None:
        self._pending.append(channel)
        if threading.get_ident() != self.leader:  # a relieved thread's channel has its next request
            self.server.pull_trigger()

    def set_thread_count(self, count: int) -> None:
        """Requests that may run at once (the watchdog raises it for each request stuck past its 504)."""
        with self._lock:
            self._cap = count

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self.stop()
        return True

    # -- the main thread ------------------------------------------------------------------------

    def run(self) -> None:
        """Start the loop on a thread of its own and watch it until ``stop()`` (the main thread)."""
        global _current
        _current = self
        self._spawn()
        period = max(self.handoff / 2, 0.001)
        while not self.done.wait(period):
            started = self._started
            if started and time.monotonic() - started > self.handoff:
                self.relieve(started)
        with self._lock:
            self._turn.notify_all()

    def stop(self) -> None:
        self.done.set()
        self.server.pull_trigger()

    def call_soon(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the leader's thread, between two polls (from any thread)."""
        self._soon.append(function)
        self.server.pull_trigger()

    def relieve(self, started: Optional[float]) -> None:
        """Give the loop to a follower, or to a new thread if none waits. ``started``: only if the
        leader is still in the request that began then (None: the caller is the leader)."""
        with self._lock:
            if self.leader is None or (started is not None and self._started != started):
                return
            self.leader = None
            self._started = 0.0
            self._running += 1
            waiting = self._waiting
            if waiting:
                self._turn.notify()
        if not waiting:
            self._spawn()

    def _spawn(self) -> None:
        threading.Thread(target=self._follow, name="toolkit-loop", daemon=True).start()

    # -- the loop's threads ---------------------------------------------------------------------

    def _follow(self) -> None:
        me = threading.get_ident()
        while True:
            with self._lock:
                while self.leader is not None and not self.done.is_set():
                    self._waiting += 1
                    self._turn.wait()
                    self._waiting -= 1
                if self.done.is_set():
                    return
                self.leader = me
            self._lead(me)

    def _lead(self, me: int) -> None:
        """Poll and answer until the loop is stopped or moves to another thread."""
        pending, soon, poll, socket_map = self._pending, self._soon, self._poll, self.server._map
        lock = self._lock
        while not self.done.is_set():
            while soon:
                soon.popleft()()
            poll(0.0 if pending and self._running < self._cap else 0.2, socket_map)
            while pending and self._running < self._cap:
                channel = pending.popleft()
                with lock:
                    self._started = time.monotonic()
                _local.skipped = False
                channel.service()
                with lock:
                    relieved = self.leader != me
                    self._started = 0.0
                    if relieved:
                        self._running -= 1
                if relieved:
                    if _local.skipped or pending:  # the new leader sends what this request wrote, or starts
                        self.server.pull_trigger()  # a request it held back while this one ran
                    return
                if channel.total_outbufs_len:
                    channel.handle_write()
        with lock:
            self.leader = None
            self._turn.notify_all()


def skip_wakeup() -> bool:
    """Whether a request's end needs no wake-up of the loop: this thread runs the loop and sends what
    it wrote itself. (If the loop moves on before then, ``_lead`` wakes the new leader instead.)"""
    loop = _current
    if loop is not None and loop.leader == threading.get_ident():
        _local.skipped = True
        return True
    return False
