"""A trial load of a model in a throwaway process, before any worker is asked to load it.

Why: every worker loads every model in its own process, so a ``model_fn`` or an import that kills its
process (``os._exit``, a segfault in native code, the OOM killer) killed every worker at once, the
one holding the client's POST /models included: the client saw its connection dropped, and every
in-flight request to the other models was lost while the workers were replaced (issue 12). The
supervisor's control thread now first loads the model in a fork of the supervisor; only if that
process acknowledges a clean load are the workers asked. A trial that dies is a 500 naming how
(``killed by SIGSEGV``, ``exited with code 3``), and no worker ever saw the model.

Cost: the model is loaded once more, before the workers load it (its ``model_fn`` time again;
memory is not added, the trial has exited by then). ``TOOLKIT_PROBE_MODEL_LOADS=false`` skips it.

How: the control thread forks a go-between, which forks the trial and waits for it. Only the
go-between reaps the trial, so its exit status is not lost to the supervisor's ``waitpid(-1)``
(which reaps any child); the go-between itself is reaped there as an unknown child. Both report on
one pipe, one JSON line each: the trial its acknowledgement, the go-between how the trial ended. The
trial exits when the supervisor is gone (it polls it), so a stop never leaves it behind.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any, Callable

from toolkit.serving.supervisor import describe_status

Loader = Callable[[str, str], dict]


def trial_load(load: Loader, name: str, url: str) -> dict:
    """``load(name, url)`` in a throwaway process: its acknowledgement ({"ok": ..., "error": ...}), or a
    failed one saying how the process died."""
    supervisor = os.getpid()
    read_end, write_end = os.pipe()
    go_between = os.fork()
    if go_between == 0:  # pragma: no cover  (a child: reports through the pipe)
        _go_between(load, name, url, write_end, read_end, supervisor)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        lines = reader.read().splitlines()
    try:
        os.waitpid(go_between, 0)
    except ChildProcessError:
        pass  # the supervisor's main loop reaped it first
    report: dict[str, Any] = {}
    for line in lines:
        try:
            report.update(json.loads(line))
        except ValueError:
            continue
    ack = report.get("ack")
    if isinstance(ack, dict):
        return ack
    ended = report.get("ended", "ended without a word")
    return {"ok": False, "error": f"loading model {name!r} ended the process that tried it ({ended}); "
                                  f"no worker was asked to load it"}


def _go_between(load: Loader, name: str, url: str, write_end: int, read_end: int, supervisor: int) -> None:
    try:
        os.close(read_end)
        trial = os.fork()
        if trial == 0:
            _trial(load, name, url, write_end, supervisor)
        _, status = os.waitpid(trial, 0)
        _send(write_end, {"ended": describe_status(status)})
    finally:
        os._exit(0)


def _trial(load: Loader, name: str, url: str, write_end: int, supervisor: int) -> None:
    from toolkit.serving.multimodel.control import fresh_standard_streams

    try:
        # the control thread runs with the stop signals blocked (so that they reach the main thread);
        # this process is its own: default handling, and it ends with the supervisor
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        fresh_standard_streams()
        threading.Thread(target=_end_with, args=(supervisor,), daemon=True).start()
        ack = load(name, url)
        _send(write_end, {"ack": ack})
    except BaseException as exc:
        _send(write_end, {"ack": {"ok": False, "error": f"loading model {name!r} failed: {type(exc).__name__}: {exc}"}})
    finally:
        os._exit(0)


def _end_with(supervisor: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(supervisor, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


def _send(fd: int, message: dict) -> None:
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
    except OSError:
        pass
