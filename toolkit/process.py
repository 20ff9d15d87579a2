"""Child processes: the one supervisor every launcher's command runs under.

- argv is executed as a list, never through a shell, so values keep their spaces and quotes;
- the child gets its own process group, and SIGTERM/SIGINT sent to us go to that whole group at
  once; if it is still running ``grace`` seconds later, the group gets SIGKILL;
- stdout is inherited (no copy in between); stderr is passed through as it arrives and its tail
  is kept for the failure report;
- the exit code is the child's, or 128+N when signal N ended it;
- as PID 1 (in a container) we also reap orphaned grandchildren.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

log = logging.getLogger("toolkit")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class Finished:
    """How a supervised process ended."""

    exit_code: int
    stderr_tail: str
    signalled: Optional[int] = None  # the signal we forwarded, if the stop came from outside


class _Tail:
    """Keeps the last ``limit`` bytes written, cheaply."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.limit = limit

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.size - len(self.chunks[0]) >= self.limit:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        return b"".join(self.chunks)[-self.limit :].decode("utf-8", "replace")


def _pump(src: int, tail: _Tail) -> None:
    out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    while True:
        try:
            chunk = os.read(src, 65536)
        except OSError:
            break
        if not chunk:
            break
        tail.add(chunk)
        try:
            if out is not None:
                out.write(chunk)
                out.flush()
            else:  # pragma: no cover - stderr replaced by a text-only object
                sys.stderr.write(chunk.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass
    os.close(src)


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run(
    argv: Sequence[str],
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    grace: float = 110.0,
) -> Finished:
    """Run ``argv`` to completion under supervision and report how it ended.

    Raises ``FileNotFoundError``/``PermissionError`` when argv[0] cannot be executed.
    """
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            list(argv),
            cwd=str(cwd) if cwd else None,
            env=dict(env) if env is not None else None,
            stderr=write_fd,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    tail = _Tail()
    pump = threading.Thread(target=_pump, args=(read_fd, tail), daemon=True)
    pump.start()

    received: list[int] = []
    killer: list[threading.Timer] = []

    def kill_group() -> None:
        log.warning("process %d still running %.0f s after the stop signal: SIGKILL", child.pid, grace)
        _signal_group(child.pid, signal.SIGKILL)

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        log.info("received %s: forwarding to the process group", signal.Signals(signum).name)
        _signal_group(child.pid, signum)
        if not killer:
            timer = threading.Timer(grace, kill_group)
            timer.daemon = True
            timer.start()
            killer.append(timer)

    previous = {}
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    try:
        status = _wait(child.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for timer in killer:
            timer.cancel()
    child.returncode = exit_code_of(status)  # keep Popen from waiting again
    pump.join(timeout=2.0)  # a grandchild may still hold stderr open; don't wait for it
    return Finished(exit_code_of(status), tail.text(), received[0] if received else None)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait(pid: int) -> int:
    """Wait for ``pid``; as PID 1, reap every other child that exits meanwhile."""
    reap_all = os.getpid() == 1
    while True:
        try:
            got, status = os.waitpid(-1 if reap_all else pid, 0)
        except ChildProcessError:
            return 0
        if got == pid:
            return status
