"""Spreading kept-alive connections evenly over the workers that share one listening socket.

Why: the workers all poll the supervisor's socket and whichever wakes first accepts. A client that
keeps its connections alive (wrk, the SageMaker front end) then stays with that worker for good. In
47 runs of wrk -c16 against 2 workers the split was 8/8 only 9 times; 12/4 or worse 16 times, 16/0
twice. The busier worker's requests queue behind each other while the other idles: measured
interleaved on this 2-CPU machine (10 runs each), p99 22.6 ms unbalanced against 8.0 ms balanced,
13.8k against 16.1k req/s. SO_REUSEPORT (one socket per worker) hashes connections instead: even
only on average (10/6 or worse about half the time for 16 over 2), and the connections queued on a
dead worker's socket are lost.

How: an anonymous shared memory table, made by the supervisor before it forks, holds for each worker
its number of open connections and when it last said so. A worker stops polling the listening socket
while it holds more connections than the least loaded live worker, so each new connection goes to a
worker with the fewest (the counts differ by at most one). A worker whose entry is older than
``STALE_AFTER`` (dead, stopping, or its event loop stuck) no longer counts, so it can never keep the
others from accepting; nor does a worker whose model is still loading, and that worker accepts only
when no worker is ready, so that a replacement does not collect the new connections to answer them 503.

Waking: a worker that stops polling the listening socket sleeps in its event loop (up to 0.2 s)
until one of its own connections stirs, so when the other worker in turn got ahead, nobody accepted
until that sleep ended: with 80 idle connections opened at once, the first /ping after them waited
4 s (about 19 accepts a second, issue 12). Each slot therefore has a pipe, made before forking, that
its worker polls; a worker that stops accepting writes to the pipes of the workers that hold fewer
connections, so one of them accepts at once.

Shedding: the gate only places new connections, and it decides on counts that can be out of date.
When a client closes many connections and opens as many again at once (wrk between runs, a client
pool recycled), each worker still counts its closed connections until it has answered the requests
they sent, so the worker done first saw the other as full and took the whole burst: 32/0 in 5 runs
of 5 (wrk -c64 then -c32, 2 workers). A worker replaced after a crash or a recycle likewise started
with none while the other held them all. So a worker that has held more than its share (the open
connections of all ready workers over their number, plus the slack) for ``SHED_AFTER`` seconds sheds
the difference: its next answers on that many connections carry ``Connection: close`` (only when no
other request of that connection is queued), and the clients reconnect, to the worker with fewer.
A client sees one reconnect, never a lost request.
"""

from __future__ import annotations

import mmap
import os
import time

SLACK = 32  # a worker may hold 1/SLACK more than the fewest: it accepts in batches when there are many
STALE_AFTER = 1.0  # seconds; a live worker writes its entry at least every 0.2 s (its event loop tick)
SHED_AFTER = 1.0  # seconds a worker holds more than its share before it sheds connections
_NONE = float("inf")


class Balance:
    """The table of all worker slots (made before forking, so every worker shares it)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, 16 * slots)  # MAP_SHARED | MAP_ANONYMOUS: survives fork, shared
        view = memoryview(self._memory).cast("d")
        self._counts = view[:slots]
        self._beats = view[slots:]
        self._wakes = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in range(slots)]  # (read, write) per slot

    def slot(self, index: int) -> Slot:
        """The view of worker slot ``index`` (0 <= index < slots), cleared for its new worker."""
        self.clear(index)
        return Slot(self, index)

    def clear(self, index: int) -> None:
        """Mark slot ``index`` as empty (its worker is gone): the others stop counting it at once."""
        self._beats[index] = 0.0
        self._counts[index] = 0.0

    def counts(self) -> dict[int, int]:
        """Open connections per live, ready slot (for logs and tests)."""
        cutoff = time.monotonic() - STALE_AFTER
        return {i: int(self._counts[i]) for i in range(self.slots) if self._beats[i] > cutoff}


class Slot:
    """One worker's slot: it publishes its connection count and asks whether to accept another."""

    def __init__(self, balance: Balance, index: int) -> None:
        self.index = index
        self._counts = balance._counts
        self._beats = balance._beats
        self._others = [i for i in range(balance.slots) if i != index]
        self.wake_fd = balance._wakes[index][0]  # readable when another worker wants this one to accept
        self._wake_fds = [w for _, w in balance._wakes]
        self._refusing = False
        self._uneven_since = 0.0  # monotonic: since when this worker has held more than its share
        self.excess = 0  # connections to shed (close after their next answer); the server takes them

    def may_accept(self, connections: int, ready: bool = True) -> bool:
        """Publish ``connections`` (open now) and say whether this worker should accept one more.

        Called on every turn of the worker's event loop, so it stays cheap: two stores and one pass
        over the other slots. Also sets ``excess`` (see ``_share``).
        """
        now = time.monotonic()
        cutoff = now - STALE_AFTER
        beats, counts = self._beats, self._counts
        fewest = _NONE
        total, live = connections, 1
        for i in self._others:
            if beats[i] > cutoff:
                count = counts[i]
                total += count
                live += 1
                if count < fewest:
                    fewest = count
        if not ready:  # loading: not counted by the others; takes connections only if nobody else can
            beats[self.index] = 0.0
            return fewest == _NONE
        counts[self.index] = connections
        beats[self.index] = now
        # within one of the fewest, or up to 1/SLACK more when there are many
        accept = fewest == _NONE or connections <= fewest + int(fewest) // SLACK
        if not accept and not self._refusing:
            self._wake_fewer(connections, cutoff)
        self._refusing = not accept
        if not accept:
            self._share(now, connections, fewest, -(-int(total) // live))
        elif self._uneven_since:
            self._uneven_since = 0.0
        return accept

    def _share(self, now: float, connections: int, fewest: float, share: int) -> None:
        """Set ``excess`` once this worker has held more than ``share`` (plus the slack) for SHED_AFTER."""
        if connections - fewest < 2 or connections <= share + share // SLACK:
            self._uneven_since = 0.0
        elif not self._uneven_since:
            self._uneven_since = now
        elif now - self._uneven_since >= SHED_AFTER:
            self.excess = connections - share
            self._uneven_since = now  # and again only after the clients have had time to reconnect

    def _wake_fewer(self, connections: int, cutoff: float) -> None:
        """Wake the workers with fewer connections than ours: one of them should accept now."""
        for i in self._others:
            if self._beats[i] > cutoff and self._counts[i] < connections:
                try:
                    os.write(self._wake_fds[i], b"!")
                except OSError:  # the pipe is full: that worker has a wake-up pending already
                    pass

    def connections(self) -> int:
        """This worker's open connections, as it last published them."""
        return int(self._counts[self.index])

    def leave(self) -> None:
        """This worker stops accepting (SIGTERM): the others stop counting it at once."""
        self._beats[self.index] = 0.0
