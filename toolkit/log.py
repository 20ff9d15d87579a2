"""Logging for the toolkit's own lines: one line per step, with its duration, secrets masked."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, Sequence

from toolkit.environment import MASK, looks_secret

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


def masked_argv(argv: Sequence[str]) -> list[str]:
    """argv for display: the value after a secret-looking option (``--api-token x``) is masked,
    and so is the value part of ``--password=x``."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            name, _, _value = arg.partition("=")
            shown.append(f"{name}={MASK}" if looks_secret(name) else arg)
            continue
        shown.append(arg)
        hide_next = arg.startswith("-") and looks_secret(arg)
    return shown
