"""The ``train``, ``serve`` and ``process`` console scripts: what SageMaker runs as
``docker run IMAGE train|serve`` (and a processing job as its ContainerEntrypoint).

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

PROCESS_HELP = """Usage: process SCRIPT [ARGS...] | process --help | process --version

  Run a SageMaker processing job's command: SCRIPT is a .py file, a module, a shell script or an
  executable (absolute, or relative to the working folder), ARGS are passed as given. A
  requirements.txt beside it is installed first (and a sourcedir.tar.gz there is extracted when
  SCRIPT is not beside it). The job's facts are in SM_PROCESSING_* variables (docs/environment.md).

  Exits with the script's exit code (128+N for signal N), or 2 when the job's configuration or
  code is wrong; either way /opt/ml/output/message says why (the job's ExitMessage).
"""

SERVE_HELP = """Usage: serve [--help] [--version]

  Serve the model in /opt/ml/model on SAGEMAKER_BIND_TO_PORT (default 8080): GET /ping,
  POST /invocations; with SAGEMAKER_MULTI_MODEL=true, the /models API of a multi-model endpoint.
  Variables: docs/environment.md, docs/serving.md.
"""


# What an unexpected argument's message names instead: the settings that do exist.
TRAIN_SETTINGS = ("hyperparameters in <base>/input/config/hyperparameters.json, SAGEMAKER_BASE_DIR, "
                  "SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY, TOOLKIT_LAUNCHER")
SERVE_SETTINGS = ("SAGEMAKER_BIND_TO_PORT (default 8080), TOOLKIT_BIND_HOST, SAGEMAKER_MODEL_SERVER_WORKERS, "
                  "SAGEMAKER_MODEL_SERVER_TIMEOUT, SAGEMAKER_PROGRAM, SAGEMAKER_BASE_DIR")


def _help_or_version(argv: Sequence[str], usage: str) -> Optional[int]:
    """Answer --help/--version when ``argv`` asks for them."""
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(usage)
        return 0
    if "--version" in argv:
        from toolkit import __version__

        sys.stdout.write(f"sagemaker-toolkit, version {__version__}\n")
        return 0
    return None


def _answered(name: str, argv: Sequence[str], usage: str, settings: str) -> Optional[int]:
    """Handle --help/--version; refuse any other argument, as SageMaker passes none.

    The one argument let through is the command's own name: an image whose ENTRYPOINT is
    ``train`` (or ``serve``) gets it again from ``docker run IMAGE train``, and entrypoint
    scripts of the AWS containers pass it on the same way.
    """
    code = _help_or_version(argv, usage)
    if code is not None:
        return code
    rest = list(argv[1:] if argv[:1] == [name] else argv)
    if rest:
        sys.stderr.write(f"{name}: unexpected argument {rest[0]!r}: SageMaker passes no arguments to {name}; "
                         f"set it with {settings} instead (docs/environment.md)\n")
        return 2
    return None


def train_main(argv: Optional[Sequence[str]] = None) -> None:
    code = _answered("train", sys.argv[1:] if argv is None else argv, TRAIN_HELP, TRAIN_SETTINGS)
    if code is None:
        import gc

        # The modules imported now (signal, subprocess, pluggy, pathlib, json, the toolkit) live
        # until exit and make no garbage: the cyclic collector need not walk them while importing,
        # nor after (gc.freeze moves them out of its reach). About 1.5 ms of every job start.
        gc.disable()
        from toolkit import process

        process.stop_on_signals()  # from the first line: a stop while importing ends the job cleanly too
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


def process_main(argv: Optional[Sequence[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # only the first word can be ours: `process prep.py --help` passes --help to prep.py
    code = _help_or_version(args[:1], PROCESS_HELP)
    if code is None:
        from toolkit.processing import process

        code = process(args, os.environ)
    sys.exit(code)


def serve_main(argv: Optional[Sequence[str]] = None) -> None:
    code = _answered("serve", sys.argv[1:] if argv is None else argv, SERVE_HELP, SERVE_SETTINGS)
    if code is None:
        from toolkit.serving import main as serving_main

        code = serving_main(os.environ)
    sys.exit(code)
