"""Worker recycling, as gunicorn's max_requests: a worker that has answered TOOLKIT_MAX_REQUESTS
requests (plus a random 0..TOOLKIT_MAX_REQUESTS_JITTER, so that workers do not all go at once) or
whose RSS has passed TOOLKIT_MAX_RSS_MB is replaced. The reason is a handler that leaks.

The worker only asks: it sets its flag in a table shared with the supervisor (made before forking)
and keeps serving. The supervisor, which looks at the flags between its waits, forks the replacement
first and sends the old worker SIGTERM only once the replacement is ready (its model loaded), so /ping
and the invocations are answered throughout, also with a single worker. The old worker then drains as
on any SIGTERM: it accepts no new connection, answers what it has with ``Connection: close`` (a
kept-alive client reconnects, to another worker, instead of sending its next request here) and exits
when nothing is in flight.
"""

from __future__ import annotations

import logging
import mmap
import os
import random
import threading
from typing import Any, Optional

log = logging.getLogger("toolkit")
RSS_EVERY = 1.0  # seconds between two looks at the worker's RSS


class Flags:
    """One byte per worker slot: 1 when that slot's worker asks to be replaced."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, max(slots, 1))  # MAP_SHARED | MAP_ANONYMOUS: survives fork, shared

    def ask(self, index: int) -> None:
        self._memory[index] = 1

    def asked(self, index: int) -> bool:
        return self._memory[index] == 1

    def clear(self, index: int) -> None:
        self._memory[index] = 0


def enabled(env: object) -> bool:
    return bool(getattr(env, "max_requests", 0) or getattr(env, "max_rss_mb", 0))


def slots(env: Any) -> int:
    """Worker slots (balance table, metrics): with recycling, room for each worker's replacement too."""
    return env.workers * (2 if enabled(env) else 1)


def rss_bytes() -> int:
    """This process's resident set size (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Recycler:
    """In a worker: counts requests, watches the RSS, and asks once for a replacement."""

    def __init__(self, max_requests: int, jitter: int, max_rss_mb: int, flags: Flags, index: int) -> None:
        # SystemRandom: every worker is forked from one parent, and random's state with it
        self.limit = max_requests + random.SystemRandom().randint(0, jitter) if max_requests else 0
        self.max_rss = max_rss_mb * 1024 * 1024
        self.flags = flags
        self.index = index
        self.served = 0
        self.asked = False

    @classmethod
    def for_worker(cls, env: object, flags: Optional[Flags], index: int) -> Optional[Recycler]:
        if flags is None or not enabled(env):
            return None
        recycler = cls(getattr(env, "max_requests", 0), getattr(env, "max_requests_jitter", 0),
                       getattr(env, "max_rss_mb", 0), flags, index)
        if recycler.max_rss:
            threading.Thread(target=recycler._watch_rss, name="toolkit-rss", daemon=True).start()
        return recycler

    def count(self) -> None:
        """One more request (called as each starts)."""
        self.served += 1
        if self.served == self.limit:
            self.ask(f"it has answered {self.served} requests (TOOLKIT_MAX_REQUESTS)")

    def ask(self, why: str) -> None:
        if self.asked:
            return
        self.asked = True
        log.info("worker %d asks to be replaced: %s", os.getpid(), why)
        self.flags.ask(self.index)

    def _watch_rss(self) -> None:
        event = threading.Event()
        while not self.asked:
            rss = rss_bytes()
            if rss > self.max_rss:
                self.ask(f"its RSS is {rss / 2**20:.0f} MB, over TOOLKIT_MAX_RSS_MB={self.max_rss // 2**20}")
                return
            event.wait(RSS_EVERY)


__all__ = ["Flags", "Recycler", "enabled", "rss_bytes"]
