"""Child processes: the one supervisor every child of the toolkit runs under (``train``'s and
``process``'s job, pip, the local emulator's hosts, the launcher plugins' torchrun and mpirun).

- ``start`` runs argv as a list, never through a shell, in its own session (process group), in
  its own working folder (``subprocess.Popen(cwd=...)``: our process never changes folder), with
  only fds 0-2 and the default disposition of the signals Python ignores; its output is inherited,
  or copied as it arrives with a prefix on every line, or with its tail kept for a failure report;
- ``Supervisor`` waits for the children it started: SIGTERM, SIGINT and SIGHUP sent to us go to
  each child's whole group at once; ``grace`` seconds after the first stop whatever still runs is
  killed (with every descendant); an ``on_exit`` callback hears each exit and may stop the others;
  ``max_seconds`` and ``stop_when`` stop them too;
- an exit code is the child's, or 128+N when signal N ended it;
- as PID 1 (in a container) it also reaps orphaned grandchildren while it waits.
"""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import time
from _queue import Empty, SimpleQueue  # queue's own, without the rest of queue.py
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover - types only: starting a child needs no pathlib
    from pathlib import Path

from toolkit.log import INFO, WARNING, log

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
TAIL_BYTES = 16 * 1024
# The longest the supervisor's main thread blocks without running Python code. A stop signal's
# handler runs only there, between bytecodes: a signal that arrives just before the thread enters
# a lock wait (or that the kernel hands to another thread) would otherwise wait for the next event,
# which may be minutes away (a pip that waits on a silent index).
SIGNAL_POLL = 0.25


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


def exit_code(returncode: int) -> int:
    """Popen's return code as a shell reports it: the exit code, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def exit_code_of(status: int) -> int:
    """A wait status (``os.waitpid``) as a shell reports it."""
    return exit_code(os.waitstatus_to_exitcode(status))


def signal_group(pid: int, sig: int) -> None:
    """``sig`` to the process group ``pid`` leads (every child starts one), else to ``pid`` alone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), including those in sessions of their own, which
    a process-group signal misses (``train`` starts the user's process in its own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL to ``pid``'s group and to every descendant, so nothing outlives a killed child."""
    targets = descendants(pid)
    signal_group(pid, signal.SIGKILL)
    for other in targets:
        try:
            os.kill(other, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _pump(fd: int, dest: Any, prefix: bytes, tail: Optional[_Tail], done: Any) -> None:
    """Copy the pipe ``fd`` to ``dest`` as it arrives, with ``prefix`` before every line; keep
    the last bytes in ``tail``."""
    at_line_start = True
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        if tail is not None:
            tail.add(chunk)
        if prefix:
            pieces = chunk.split(b"\n")
            last = len(pieces) - 1
            chunk = b"\n".join(prefix + p if (i or at_line_start) and (i < last or p) else p
                               for i, p in enumerate(pieces))
            at_line_start = not pieces[-1]
        try:
            dest.write(chunk)
            dest.flush()
        except (OSError, ValueError):
            pass
    os.close(fd)
    done.release()


class Child:
    """A process ``Supervisor.start`` (or ``start``) started, in its own session."""

    def __init__(self, popen: subprocess.Popen, name: str, tail: Optional[_Tail],
                 stop: Optional[Callable[[int], None]], kill: Optional[Callable[[], None]]) -> None:
        self.popen, self.name, self._tail = popen, name, tail
        self._stop, self._kill = stop, kill
        self.pumps: list[Any] = []
        self.exit_code: Optional[int] = None  # set when it has ended
        self.seconds = 0.0  # from its start to its exit

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        """Stop it with ``sig``: its own stop action when it has one, else ``sig`` to its group."""
        if self._stop is not None:
            self._stop(sig)
        else:
            signal_group(self.pid, sig)

    def kill(self) -> None:
        if self._kill is not None:
            self._kill()
        else:
            kill_tree(self.pid)

    def tail(self, timeout: float = 2.0) -> str:
        """The end of its stderr (when started with ``keep_tail``), once the copy has caught up (a
        grandchild may hold stderr open: don't wait for it longer than ``timeout``)."""
        for pumped in self.pumps:
            if pumped.acquire(timeout=timeout):
                pumped.release()
        return self._tail.text() if self._tail is not None else ""


def start(argv: Sequence[str], *, cwd: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
          name: str = "", prefix: str = "", keep_tail: bool = False, stdout_to_stderr: bool = False,
          stdin: Optional[int] = None, stop: Optional[Callable[[int], None]] = None,
          kill: Optional[Callable[[], None]] = None) -> Child:
    """Start ``argv`` in its own session; raises ``OSError`` as ``subprocess.Popen`` does when
    argv[0] or ``cwd`` cannot be used (argv[0] is looked up on the child's PATH).

    Its stdout and stderr are ours, unless ``prefix`` (each line of both gets it, on our stdout and
    stderr), ``keep_tail`` (stderr is copied to ours and its tail kept: ``Child.tail()``) or
    ``stdout_to_stderr`` (its stdout goes where its stderr goes: an installer's chatter is log,
    not the job's output). ``stop(sig)`` and ``kill()`` replace the signals sent to its group
    (a container is stopped through its engine)."""
    pipes = {}  # our end of each pipe -> (our stream it is copied to, keeps the tail)
    err_r = err_w = out_r = out_w = None
    if prefix or keep_tail:
        err_r, err_w = os.pipe()
        pipes[err_r] = (sys.stderr, keep_tail)
    if stdout_to_stderr:
        out_w = err_w if err_w is not None else 2
    elif prefix:
        out_r, out_w = os.pipe()
        pipes[out_r] = (sys.stdout, False)
    try:
        popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=stdin, stdout=out_w, stderr=err_w,
                                 start_new_session=True)
    except BaseException:
        for fd in pipes:
            os.close(fd)
        raise
    finally:
        for fd in {err_w, out_w} - {None, 2}:
            os.close(fd)  # type: ignore[arg-type]
    child = Child(popen, name or argv[0], _Tail() if keep_tail else None, stop, kill)
    for fd, (dest, tail) in pipes.items():
        pumped = _thread.allocate_lock()
        pumped.acquire()
        child.pumps.append(pumped)
        _thread.start_new_thread(_pump, (fd, getattr(dest, "buffer", None) or dest, prefix.encode(),
                                         child._tail if tail else None, pumped))
    return child


class Supervised(NamedTuple):
    """How the children of a ``Supervisor`` ended, in the order they were started."""

    children: list[Child]
    signalled: Optional[int]  # the first stop signal we received and forwarded
    timed_out: bool  # max_seconds passed

    @property
    def first_failure(self) -> Optional[Child]:
        failed = [c for c in self.children if c.exit_code]
        return min(failed, key=lambda c: c.seconds) if failed else None


class Supervisor:
    """Start children and wait for all of them.

    ``with Supervisor(grace=...) as sup: sup.start(argv, ...); done = sup.wait()``. While the block
    runs (main thread only), SIGTERM, SIGINT and SIGHUP are forwarded to every running child (a
    stop that arrives before a child has started reaches it as it starts); the first stop, a
    failure ``on_exit`` answers with a reason, ``max_seconds`` passing or ``stop_when()`` returning
    a reason sends SIGTERM to the others, and ``grace`` seconds later whatever still runs is killed.
    ``stop_signal``: what a received stop is forwarded as (default: the signal itself).
    ``kill_on_second``: a second stop signal kills at once (Ctrl-C twice). Leaving the block on an
    exception kills the children started so far."""

    def __init__(self, grace: float, *, max_seconds: Optional[float] = None,
                 on_exit: Optional[Callable[[Child], Optional[str]]] = None,
                 stop_when: Optional[Callable[[], Optional[str]]] = None, poll: float = 0.05,
                 stop_signal: Optional[int] = None, kill_on_second: bool = False,
                 timeout_reason: str = "still running after {seconds:.0f} s") -> None:
        self.grace, self.max_seconds, self.on_exit = max(grace, 0.0), max_seconds, on_exit
        self.stop_when, self.poll = stop_when, poll
        self.stop_signal, self.kill_on_second = stop_signal, kill_on_second
        self.timeout_reason = timeout_reason
        self.children: list[Child] = []
        self.signals: list[int] = []
        self.events = SimpleQueue()  # (child, returncode) or a signal number; put() is reentrant
        self.lock = _thread.allocate_lock()
        self.started = time.monotonic()
        self.kill_at: Optional[float] = None
        self.reaper: Any = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Supervisor:
        try:  # handlers first: a stop that arrives while a child starts is held, then forwarded
            for sig in FORWARDED:
                self.previous[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: whoever embeds us handles signals
            pass
        return self

    def __exit__(self, kind: Any, *_: object) -> None:
        restore_signals(self.previous)
        if kind is not None:
            for child in self.children:
                if child.exit_code is None:
                    child.kill()

    def _on_signal(self, signum: int, _frame: object) -> None:
        _STOPS.append(signum)
        self.signals.append(signum)
        self.events.put(signum)

    def start(self, argv: Sequence[str], **how: Any) -> Child:
        """``start(argv, **how)``, supervised from now on."""
        with self.lock:  # the reaper (as PID 1) must find the child registered
            child = start(argv, **how)
            self.children.append(child)
        child.started = time.monotonic()  # type: ignore[attr-defined]
        if os.getpid() == 1:
            if self.reaper is None:
                self.reaper = _thread.start_new_thread(self._reap_all, ())
        else:
            _thread.start_new_thread(self._wait_for, (child,))
        if self.signals:
            self._stop(self.stop_signal or self.signals[0], f"received {signal_name(self.signals[0])}")
        return child

    def _wait_for(self, child: Child) -> None:
        self.events.put((child, child.popen.wait()))

    def _reap_all(self) -> None:
        """As PID 1: reap every child that exits (orphans re-parented to us too) until ours are done."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            with self.lock:
                ours = next((c for c in self.children if c.pid == pid), None)
                if ours is not None:
                    ours.popen.returncode = os.waitstatus_to_exitcode(status)
                    self.events.put((ours, ours.popen.returncode))
                    if all(c.popen.returncode is not None for c in self.children):
                        return

    def _stop(self, sig: int, why: str, level: int = WARNING) -> None:
        running = [c for c in self.children if c.exit_code is None]
        if not running:
            return
        log.log(level, "%s: stopping %s (%s, SIGKILL %.0f s later)", why, ", ".join(c.name for c in running),
                    signal_name(sig), self.grace)
        for child in running:
            child.signal(sig)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + self.grace

    def wait(self) -> Supervised:
        """Wait until every child started has ended; how they ended."""
        deadline = None if self.max_seconds is None else self.started + self.max_seconds
        timed_out = False
        while any(c.exit_code is None for c in self.children):
            now = time.monotonic()
            waits = [t - now for t in (deadline, self.kill_at) if t is not None and t != float("inf")]
            waits.append(SIGNAL_POLL)
            if self.stop_when is not None:
                waits.append(self.poll)
            try:
                event = self.events.get(timeout=max(min(waits), 0.0))
            except Empty:
                event = None
            if isinstance(event, int):  # a stop signal
                if self.kill_on_second and len(self.signals) > 1:
                    self.kill_at = time.monotonic()
                self._stop(self.stop_signal or event, f"received {signal_name(event)}")
            elif event is not None:
                child, returncode = event
                child.exit_code = exit_code(returncode)
                child.seconds = time.monotonic() - child.started  # type: ignore[attr-defined]
                why = self.on_exit(child) if self.on_exit is not None else None
                if why:
                    self._stop(signal.SIGTERM, why)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out, deadline = True, None
                self._stop(signal.SIGTERM, self.timeout_reason.format(seconds=self.max_seconds))
            running = any(c.exit_code is None for c in self.children)
            why = self.stop_when() if self.stop_when is not None and running else None
            if why:
                self._stop(signal.SIGTERM, why, INFO)
            if self.kill_at is not None and now >= self.kill_at:
                running = [c for c in self.children if c.exit_code is None]
                if running:
                    log.warning("%s still running %.0f s after the stop: SIGKILL",
                                ", ".join(c.name for c in running), self.grace)
                for child in running:
                    child.kill()
                self.kill_at = float("inf")
        return Supervised(list(self.children), self.signals[0] if self.signals else None, timed_out)


def run(
    argv: Sequence[str],
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    grace: float = 110.0,
    stdout_to_stderr: bool = False,
) -> Finished:
    """Run ``argv`` to completion under supervision and report how it ended.

    Raises ``FileNotFoundError``/``PermissionError`` when argv[0] or ``cwd`` cannot be used.
    ``stdout_to_stderr`` sends the child's stdout where its stderr goes (kept in the tail too).
    """
    with Supervisor(grace) as supervisor:
        child = supervisor.start(argv, cwd=cwd, env=env, keep_tail=True, stdout_to_stderr=stdout_to_stderr)
        done = supervisor.wait()
    return Finished(child.exit_code or 0, child.tail(), done.signalled)
