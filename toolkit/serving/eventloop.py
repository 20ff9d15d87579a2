"""A waitress worker's event loop, run by whichever of its threads is free: the loop answers requests itself.

Waitress's own design hands every parsed request from the event-loop thread to a request thread. Both
need the GIL, so each request costs two thread wake-ups and, under load, waits for the GIL's 5 ms
switch interval behind the other threads: that hand-off was the p99 tail against gunicorn's sync
workers (docs/serving.md#the-tail), and with torch, whose every operation releases the GIL, it cost
more than the model.

Here the thread that runs the event loop (the *leader*) answers each request itself, between two
polls, as a single-threaded server would. The other threads (*followers*) wait. When the leader's
request has run for ``handoff`` seconds (TOOLKIT_LOOP_HANDOFF_MS; the main thread looks every half
of it), the loop moves to a follower and the request stays where it is, so that a slow model, a
stream or a model load never holds the worker's other connections, /ping among them, for longer
than that.

A request that waits for its dynamic batch does not wait: it runs the loop on (``park``), nested in
its own call, until its batch has been predicted. The batch's other requests are read, decoded and
parked the same way, one level deeper each, and the batch call is made by whichever level closes it
(full, every connection in, or its wait over: ``Batcher.left`` / ``make_due``). Then the levels return one by one,
each encoding and sending its own answer. So a batched request costs no thread and no thread
switch. The stack is at most ``MAX_PARKED`` requests deep; a request parked below one that runs
long (and is relieved) is answered when that one ends (its batch is not held up: the next leader
makes the call). A request parked below one that waits for another batch (another model's, with a
longer wait) would be held up the same way, so that batch is made, once one beneath is done, by the
end of that one's wait at the latest (``hurry``); and a request known to run long (``slow``: a
multi-model endpoint's model load, or an invocation of a model that does not batch) is never
started above parked ones (the loop moves on first, and they wait as threads).

A relieved thread finishes its request as waitress's request threads do (the new leader sends what
it wrote), then becomes a follower. At most ``threads`` requests run at once on relieved threads
(TOOLKIT_SERVER_THREADS, raised by one for each request stuck past its 504): while that many run,
the leader polls (reads, sends, accepts, times out slow connections) but starts no request. The
loop can always move, so that a leader whose answer waits for the loop to send it (waitress's
writer blocks above its buffer limit) is relieved like any other.

The main thread runs no request: it keeps the signal handlers prompt, watches the leader and runs
the stop. Everything that touches the socket map (the stop's closing of the listening socket
included) runs on the leader's thread (``call_soon``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, Protocol

MAX_PARKED = 64  # requests parked on the leader's stack at most (a batch then waits as a thread); each takes
# ~6 of CPython 3.12's fixed 1,500 nested C calls (not raised by sys.setrecursionlimit): 256 overflowed them
FRAMES_PER_PARK = 24  # Python frames one parked request takes on the stack (with room to spare)

_current: Optional[EventLoop] = None  # the worker's loop (one per process)
_local = threading.local()  # skipped: a wake-up was left out during this thread's request (skip_wakeup);
# parked: (finished(), due) of the requests parked on this thread's stack, deepest first (park)


class Batches(Protocol):
    """What the loop asks of a model's batching (``toolkit.serving.batching.Batcher``)."""

    def left(self, now: float) -> Optional[float]:
        """Seconds until a batch call is due (0: now), or None when no batch is open."""

    def make_due(self, now: float) -> None:
        """Make the batch call that is due, if one is, on this thread."""


def current() -> Optional[EventLoop]:
    """The worker's event loop, or None (another server, or TOOLKIT_LOOP_HANDOFF_MS=0)."""
    return _current


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
        self._batches: list[Batches] = []  # models with a batch open, made when due (``watch``)
        self.batches_made = 0  # batch calls made so far (any thread; only its changes matter: ``park``)
        self.slow: Callable[[Any], bool] = lambda channel: False  # its request may run long (a model load)
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

    def wake(self) -> None:
        """Make the leader poll again now (from any thread): a batch was predicted elsewhere."""
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

    # -- batches (any thread; ``park`` on the leader's) -----------------------------------------

    def leads(self) -> bool:
        """Whether the calling thread runs the loop."""
        return self.leader == threading.get_ident()

    def watch(self, batches: Batches) -> None:
        """A batch of ``batches`` is open: ask it when it is due, between polls (from any thread)."""
        if batches not in self._batches:
            self._batches.append(batches)
            if not self.leads():
                self.server.pull_trigger()

    def park(self, finished: Callable[[], bool], due: float = 0.0,
             hurry: Optional[Callable[[float], None]] = None) -> bool:
        """Run the loop on, nested in the leader's current request, until ``finished()``. False: the
        loop moved to another thread first (or the stack is full), and the caller must wait as a
        thread (the loop is no longer its). ``due``: when the request's batch wait ends. ``hurry(by)``
        is called once a request parked beneath this one is finished first (another model's batch, or
        one that waited for a call elsewhere): it can return only after this one, so this one's batch
        should be made by the end of that one's wait (``by``, its ``due``)."""
        me = threading.get_ident()
        parked = getattr(_local, "parked", None)
        if parked is None:
            parked = _local.parked = []
        if self.leader != me:
            return False
        if len(parked) >= MAX_PARKED:
            self.relieve(None)
            return False
        parked.append((finished, due))
        try:
            with self._lock:
                if self.leader != me:
                    return False
                self._started = 0.0  # waiting, not running: the loop stays here
            seen = -1  # (one beneath may be finished already: look once at the start)
            while not finished():
                if hurry is not None and self.batches_made != seen:  # (a request beneath may be finished)
                    seen = self.batches_made
                    by = min((when for beneath, when in parked[:-1] if beneath()), default=None)
                    if by is not None:
                        hurry(by)
                        hurry = None
                if self.done.is_set() or self._round(me):
                    return False
            with self._lock:
                if self.leader != me:
                    return False
                self._started = time.monotonic()  # running again: timed from now (what is left is its answer)
            return True
        finally:
            parked.pop()

    # -- the loop's threads ---------------------------------------------------------------------

    def _follow(self) -> None:
        me = threading.get_ident()
        limit = 1000 + FRAMES_PER_PARK * MAX_PARKED  # parked requests nest: room for them on this thread
        if sys.getrecursionlimit() < limit:
            sys.setrecursionlimit(limit)
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
        while not self.done.is_set():
            _local.skipped = False
            if self._round(me):  # relieved: this thread's request has ended, it becomes a follower
                with self._lock:
                    self._running -= 1
                if _local.skipped or self._pending:  # the new leader sends what this request wrote, or
                    self.server.pull_trigger()  # starts a request it held back while this one ran
                return
        with self._lock:
            self.leader = None
            self._turn.notify_all()

    def _round(self, me: int) -> bool:
        """One turn of the loop: what was asked for, a poll, the requests ready to start, the batches
        due. True when the loop moved to another thread meanwhile (it is no longer this one's)."""
        pending, soon, lock = self._pending, self._soon, self._lock
        while soon:
            soon.popleft()()
        if not pending or self._running >= self._cap:  # (requests ready to start come first: a poll costs
            timeout = 0.2  # a call per connection, and a batch's requests each start a nested round)
            if self._batches:
                now = time.monotonic()
                for batches in self._batches:
                    left = batches.left(now)
                    if left is not None and left < timeout:
                        timeout = left
            self._poll(timeout, self.server._map)
        while pending and self._running < self._cap:
            channel = pending.popleft()
            if getattr(_local, "parked", None) and self.slow(channel):  # it would hold those parked beneath
                pending.appendleft(channel)  # until it ends: the next leader starts it instead
                self.relieve(None)
                return True
            with lock:
                self._started = time.monotonic()
            channel.service()
            with lock:
                if self.leader != me:
                    return True
                self._started = 0.0
            if channel.total_outbufs_len:
                channel.handle_write()
        if self._batches:
            return self._make_due(me)
        return False

    def _make_due(self, me: int) -> bool:
        """Make the batch calls that are due, each on this thread. True: the loop moved meanwhile."""
        now = time.monotonic()
        for batches in list(self._batches):
            left = batches.left(now)
            if left is None:
                self._batches.remove(batches)
            elif left <= 0:
                with self._lock:
                    self._started = now  # a batch call that runs long moves the loop on
                batches.make_due(now)
                with self._lock:
                    if self.leader != me:
                        return True
                    self._started = 0.0
        return False


def skip_wakeup() -> bool:
    """Whether a request's end needs no wake-up of the loop: this thread runs the loop and sends what
    it wrote itself. (If the loop moves on before then, ``_lead`` wakes the new leader instead.)"""
    loop = _current
    if loop is not None and loop.leader == threading.get_ident():
        _local.skipped = True
        return True
    return False
