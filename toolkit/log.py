"""Logging for the toolkit's own lines: one line per step, with its duration, secrets masked.

Every line reads ``2026-11-22 05:34:01,123 toolkit INFO message`` and goes to stderr. The core
logs through ``log`` below, which hands each line to the standard ``logging`` module's
``toolkit`` logger whenever that module is loaded (``serve``, the local emulator, any plugin
that logs with ``logging.getLogger("toolkit")``: their lines and ours share one handler), and
otherwise writes the same line itself: ``train`` (``setup(level, defer=True)``) does not import
``logging`` (with ``traceback``, ``string`` and ``weakref``, about 4 ms of every job start)
unless something else does. ``sync()`` installs the handler once ``logging`` has appeared; the
core calls it after loading plugins and before each step, so a plugin's lines are formatted like
the core's.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Iterator, Optional

from toolkit.redact import redact

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR", CRITICAL: "CRITICAL"}
# logging.getLevelName's table, for settings.parse_level (without importing logging)
LEVELS = {"CRITICAL": CRITICAL, "FATAL": CRITICAL, "ERROR": ERROR, "WARN": WARNING, "WARNING": WARNING,
          "INFO": INFO, "DEBUG": DEBUG, "NOTSET": 0}
FORMAT = "%(asctime)s toolkit %(levelname)s %(message)s"

_level: Optional[int] = None  # set by setup(); None: nobody asked for the toolkit's lines yet


def _std() -> Any:
    """The standard logging module when it is loaded (configured for our lines), else None."""
    std = sys.modules.get("logging")
    if std is not None and _level is not None:
        logger = std.getLogger("toolkit")
        if not any(getattr(h, "_toolkit", False) for h in logger.handlers):
            handler = std.StreamHandler(sys.stderr)
            handler.setFormatter(_redacting_formatter(std)(FORMAT))
            handler._toolkit = True
            logger.addHandler(handler)
            logger.propagate = False
        if logger.level != _level:
            logger.setLevel(_level)
    return std


def _redacting_formatter(std: Any) -> Any:
    """logging.Formatter whose lines pass through the one masking rule (toolkit/redact.py)."""

    class RedactingFormatter(std.Formatter):  # type: ignore[name-defined,misc]
        def format(self, record: Any) -> str:
            return redact(super().format(record))

    return RedactingFormatter


class Log:
    """The ``toolkit`` logger as the core uses it: the few ``logging.Logger`` methods it calls."""

    def isEnabledFor(self, level: int) -> bool:  # logging.Logger's name
        std = _std()
        if std is not None:
            return bool(std.getLogger("toolkit").isEnabledFor(level))
        return level >= (WARNING if _level is None else _level)

    def log(self, level: int, msg: str, *args: Any) -> None:
        std = _std()
        if std is not None:
            std.getLogger("toolkit").log(level, msg, *args)
            return
        if _level is None:  # as logging does when unconfigured: warnings and errors, bare
            if level >= WARNING:
                _write(_message(msg, args))
            return
        if level >= _level:
            now = time.time()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            _write(f"{stamp},{int((now - int(now)) * 1000):03d} toolkit {NAMES.get(level, f'Level {level}')} "
                   f"{_message(msg, args)}")

    def debug(self, msg: str, *args: Any) -> None:
        self.log(DEBUG, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(INFO, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(WARNING, msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self.log(ERROR, msg, *args)

    def exception(self, msg: str, *args: Any) -> None:
        """An error with the current traceback: rare enough to load ``logging`` for."""
        import logging  # noqa: F401 - _std() finds it in sys.modules

        _std().getLogger("toolkit").exception(msg, *args)


def _message(msg: str, args: tuple) -> str:
    if len(args) == 1 and isinstance(args[0], dict) and args[0]:
        args = args[0]  # type: ignore[assignment] - logging's mapping form
    return redact(str(msg) % args if args else str(msg))


def _write(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: logging would not raise either
        pass


log = Log()


def setup(level: int, *, defer: bool = False) -> None:
    """Send the toolkit's log lines to stderr at ``level`` (repeated calls only change the level).

    This configures ``logging``'s ``toolkit`` logger, importing ``logging`` for it, so that
    modules that log through ``logging`` directly (serve, the local emulator) are set up too.
    ``defer=True`` (``train``) does not import it: lines are written directly until something
    loads ``logging``, and ``sync()`` configures it then.
    """
    global _level
    _level = level
    if not defer:
        import logging  # noqa: F401 - _std() finds it in sys.modules
    _std()


def sync() -> None:
    """Install the handler on ``logging``'s ``toolkit`` logger if ``logging`` was loaded since."""
    _std()


@contextlib.contextmanager
def step(name: str) -> Iterator[dict]:
    """Log ``name`` with its duration when the block ends; the dict collects extra detail."""
    sync()  # the step runs plugin code, which may log through ``logging``
    detail: dict = {}
    start = time.perf_counter()
    try:
        yield detail
    finally:
        detail["seconds"] = time.perf_counter() - start
        extra = f": {detail['what']}" if detail.get("what") else ""
        log.info("%s%s (%.2f s)", name, extra, detail["seconds"])
