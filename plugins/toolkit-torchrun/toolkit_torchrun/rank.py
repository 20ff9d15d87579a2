"""Runs one rank's program in this process, as ``python script.py`` or ``python -m module`` would,
and records a failure's exit code and time where the node helper finds them.

torchrun itself exits 1 whatever code a rank failed with; this record is how the job ends with
the rank's own code on every host. Nothing is recorded for a rank that succeeds or is killed by
a signal (the node helper knows about those from torchrun).
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
import time
from pathlib import Path
from typing import Any, Sequence


def exit_code(exc: SystemExit) -> int:
    """The status ``sys.exit(x)`` ends Python with: None is 0, a number is itself, else 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    return 1


def record(code: int, environ: Any = os.environ) -> None:
    folder = environ.get("TOOLKIT_TORCHRUN_STATE")
    if not folder:
        return
    rank = environ.get("RANK", "?")
    data = {"rank": rank, "code": code, "time": time.time(), "host": socket.gethostname()}
    path = Path(folder) / f"rank-{rank}.json"
    try:
        path.write_text(json.dumps(data))
    except OSError:
        pass  # the run's own result matters more than this note


def main(argv: Sequence[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m toolkit_torchrun.rank SCRIPT.py|-m MODULE [ARGS...]")
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[0] = str(Path(argv[0]).resolve().parent)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exit_code(exc):
            record(exit_code(exc))
        raise
    except KeyboardInterrupt:
        raise
    except BaseException:
        record(1)
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
