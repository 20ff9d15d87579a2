"""Logging for the toolkit's own lines: one line per step, with its duration, secrets masked."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator

log = logging.getLogger("toolkit")


def setup(level: int) -> None:
    """Send the toolkit's log lines to stderr (idempotent: repeated calls only change the level)."""
    if not any(getattr(h, "_toolkit", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s toolkit %(levelname)s %(message)s"))
        handler._toolkit = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)


@contextlib.contextmanager
def step(name: str) -> Iterator[dict]:
    """Log ``name`` with its duration when the block ends; the dict collects extra detail."""
    detail: dict = {}
    start = time.perf_counter()
    try:
        yield detail
    finally:
        detail["seconds"] = time.perf_counter() - start
        extra = f": {detail['what']}" if detail.get("what") else ""
        log.info("%s%s (%.2f s)", name, extra, detail["seconds"])
