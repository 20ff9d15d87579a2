"""The ``train`` and ``serve`` console scripts: what SageMaker runs as ``docker run IMAGE train|serve``.

SageMaker passes no arguments, so these need no argument parser: they answer ``--help`` and
``--version`` by hand and otherwise start at once. (click, used by the ``toolkit`` command, would add
about 20 ms to every job start.)
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; type checkers read it as True
if TYPE_CHECKING:  # pragma: no cover - types only: `train --help` need not import typing
    from typing import Optional, Sequence

TRAIN_HELP = """Usage: train [--help] [--version]

  Run the SageMaker training job described by /opt/ml (or SAGEMAKER_BASE_DIR).

  Exits with the user's exit code (128+N for signal N), or 2 when the job's configuration or
  code is wrong; either way /opt/ml/output/failure says why. Variables: docs/environment.md.
"""

SERVE_HELP = """Usage: serve [--help] [--version]

  Serve the model in /opt/ml/model on SAGEMAKER_BIND_TO_PORT (default 8080): GET /ping,
  POST /invocations; with SAGEMAKER_MULTI_MODEL=true, the /models API of a multi-model endpoint.
  Variables: docs/environment.md, docs/serving.md.
"""


def _answered(argv: Sequence[str], usage: str) -> Optional[int]:
    """Handle --help/--version; anything else SageMaker might append is ignored, as before."""
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(usage)
        return 0
    if "--version" in argv:
        from toolkit import __version__

        sys.stdout.write(f"sagemaker-toolkit, version {__version__}\n")
        return 0
    return None


def train_main(argv: Optional[Sequence[str]] = None) -> None:
    code = _answered(sys.argv[1:] if argv is None else argv, TRAIN_HELP)
    if code is None:
        import gc

        from toolkit import process

        process.stop_on_signals()  # from the first line: a stop while importing ends the job cleanly too

        # The modules imported now (pluggy, pathlib, json, the toolkit) live until exit and make
        # no garbage: the cyclic collector need not walk them while importing, nor after
        # (gc.freeze moves them out of its reach). About 1 ms of every job start.
        gc.disable()
        from toolkit.training import train

        gc.freeze()
        gc.enable()
        code = train(os.environ)
        if process.stopped() is not None:
            # Stopped: leave now. Threads a download left behind (a pool worker mid-object) would
            # otherwise be joined at exit, past the grace time SageMaker allows.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        # The job is over; what is left is the interpreter's shutdown, whose last garbage
        # collection walks every object the toolkit and its plugins made (about 3 ms). gc.freeze()
        # leaves them out of that walk: they are freed at exit all the same, and atexit
        # handlers still run. (A caller that catches SystemExit keeps a frozen heap: call
        # toolkit.training.train() instead.)
        gc.freeze()
    sys.exit(code)


def serve_main(argv: Optional[Sequence[str]] = None) -> None:
    code = _answered(sys.argv[1:] if argv is None else argv, SERVE_HELP)
    if code is None:
        from toolkit.serving import main as serving_main

        code = serving_main(os.environ)
    sys.exit(code)
