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

import _thread
import os
import signal
import sys
from collections import deque
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from toolkit.log import log

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
TAIL_BYTES = 16 * 1024
# what subprocess resets for its children (restore_signals): Python ignores these itself
RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGINT, SIGHUP) arrived while the toolkit itself was busy: reading
    the config, downloading code, installing dependencies. Raised in the main thread by the
    handler ``stop_on_signals`` installs, so whatever runs there ends at once (a download's
    partial folder is removed by its own cleanup); a BaseException, so that plugins' ``except
    Exception`` does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_STOPS: list[int] = []  # every stop signal this process received, in order


def stopped() -> Optional[int]:
    """The first stop signal this process received (while the toolkit worked or a child ran)."""
    return _STOPS[0] if _STOPS else None


def _raise_stop(signum: int, _frame: object) -> None:
    _STOPS.append(signum)
    for sig in FORWARDED:  # the cleanup that follows must not be interrupted by a second signal
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def stop_on_signals() -> dict[int, Any]:
    """From now on, SIGTERM, SIGINT and SIGHUP raise ``Stopped`` in the main thread (between
    supervised runs; ``run`` forwards them to its child while one runs). As PID 1 this is also
    what makes them count at all: the kernel drops signals that PID 1 has no handler for.
    Returns the handlers it replaced, for ``restore_signals``."""
    previous: dict[int, Any] = {}
    try:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, _raise_stop)
    except ValueError:  # not the main thread: whoever embeds us handles signals
        pass
    return previous


def restore_signals(previous: Mapping[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Finished(NamedTuple):
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


def _pump(src: int, tail: _Tail, done: _thread.LockType) -> None:
    out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    try:
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
    finally:
        done.release()


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _executable(name: str, env: Mapping[str, str]) -> str:
    """argv[0] as exec would find it: a name without '/' is looked up on the child's PATH
    (as subprocess does), not ours."""
    if "/" in name:
        return name
    for folder in os.get_exec_path(env):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(2, "No such file or directory", name)


def spawn(argv: Sequence[str], *, cwd: Optional[Path], env: Mapping[str, str], stderr: int,
          stdout_to_stderr: bool = False) -> int:
    """Start ``argv`` in its own session (process group) with ``stderr`` as its fd 2; return its PID.

    What subprocess.Popen(start_new_session=True, close_fds=True) does, with os.posix_spawn
    (vfork + exec in libc: no Python runs in the child) and without importing subprocess,
    selectors and threading on every job start. posix_spawn cannot change directory, so the
    parent steps into ``cwd`` for the call and back. Raises ``OSError`` (FileNotFoundError,
    PermissionError...) when argv[0] or ``cwd`` cannot be used, as Popen does.
    """
    path = _executable(argv[0], env)
    actions = [(os.POSIX_SPAWN_DUP2, stderr, 2)]
    if stdout_to_stderr:  # an installer's chatter is log, not the job's output
        actions.append((os.POSIX_SPAWN_DUP2, 2, 1))
    for fd in _inheritable_fds():  # close_fds: only 0, 1 and 2 reach the child
        actions.append((os.POSIX_SPAWN_CLOSE, fd))
    here = os.open(".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if cwd else None
    try:
        if cwd:
            os.chdir(cwd)
        return os.posix_spawn(path, list(argv), dict(env), file_actions=actions, setsid=True,
                              setsigdef=RESTORED)
    finally:
        if here is not None:
            os.fchdir(here)
            os.close(here)


def _inheritable_fds() -> list[int]:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # pragma: no cover - no /proc: Python's own fds are not inheritable anyway
        return []
    fds = []
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return fds


class _Deadline:
    """SIGKILL for the process group ``grace`` seconds from now, unless cancelled first."""

    def __init__(self, pid: int, grace: float) -> None:
        self.cancelled = _thread.allocate_lock()
        self.cancelled.acquire()
        _thread.start_new_thread(self._wait, (pid, max(grace, 0.0)))

    def _wait(self, pid: int, grace: float) -> None:
        if not self.cancelled.acquire(timeout=grace):
            log.warning("process %d still running %.0f s after the stop signal: SIGKILL", pid, grace)
            _signal_group(pid, signal.SIGKILL)

    def cancel(self) -> None:
        if self.cancelled.locked():
            self.cancelled.release()


def run(
    argv: Sequence[str],
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    grace: float = 110.0,
    stdout_to_stderr: bool = False,
) -> Finished:
    """Run ``argv`` to completion under supervision and report how it ended.

    Raises ``FileNotFoundError``/``PermissionError`` when argv[0] cannot be executed.
    ``stdout_to_stderr`` sends the child's stdout where its stderr goes (kept in the tail too).
    """
    received: list[int] = []
    killer: list[_Deadline] = []
    child: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        _STOPS.append(signum)
        if child:
            log.info("received %s: forwarding to the process group", signal.Signals(signum).name)
            _stop_child(child[0], signum)

    def _stop_child(pid: int, signum: int) -> None:
        _signal_group(pid, signum)
        if not killer:
            killer.append(_Deadline(pid, grace))

    # handlers first: a stop that arrives while the child starts is held, then forwarded
    previous = {}
    try:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: whoever embeds us handles signals
        pass
    try:
        read_fd, write_fd = os.pipe()
        try:
            child.append(spawn(argv, cwd=cwd, env=os.environ if env is None else env, stderr=write_fd,
                               stdout_to_stderr=stdout_to_stderr))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        pid = child[0]
        if received:
            _stop_child(pid, received[0])
        tail = _Tail()
        pumped = _thread.allocate_lock()
        pumped.acquire()
        _thread.start_new_thread(_pump, (read_fd, tail, pumped))
        status = _wait(pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for deadline in killer:
            deadline.cancel()
    pumped.acquire(timeout=2.0)  # a grandchild may still hold stderr open; don't wait for it
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
