"""Progress of a long transfer: a live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Optional

log = logging.getLogger("toolkit")
LOG_EVERY = 10.0  # seconds between log lines when stderr is not a terminal
PAINT_EVERY = 0.2


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - loop always returns


@dataclass(frozen=True)
class Transferred:
    """What one transfer moved, for the end-of-job summary."""

    files: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> str:
        return f"{human_bytes(self.bytes / self.seconds)}/s" if self.seconds > 0 else "-"

    def __str__(self) -> str:
        return f"{self.files} file(s), {human_bytes(self.bytes)} in {self.seconds:.2f} s ({self.rate})"


class Progress:
    """Counts files and bytes from any thread; reports them without slowing the transfer."""

    def __init__(self, label: str, total_files: int, total_bytes: int, stream: Optional[IO[str]] = None) -> None:
        self.label = label
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.files = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._last = self.started
        self._lock = threading.Lock()

    def add(self, nbytes: int, files: int = 0) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += files
            now = time.perf_counter()
            if now - self._last >= (PAINT_EVERY if self.live else LOG_EVERY):
                self._last = now
                self._report(now)

    def _line(self, now: float) -> str:
        seconds = max(now - self.started, 1e-9)
        return (f"{self.label}: {self.files}/{self.total_files} files, {human_bytes(self.bytes)}"
                f"/{human_bytes(self.total_bytes)} ({human_bytes(self.bytes / seconds)}/s)")

    def _report(self, now: float) -> None:
        if self.live:
            self.stream.write("\r" + self._line(now) + "\x1b[K")
            self.stream.flush()
        else:
            log.info("%s", self._line(now))

    def finish(self) -> Transferred:
        done = Transferred(self.files, self.bytes, time.perf_counter() - self.started)
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        log.info("%s: %s", self.label, done)
        return done
