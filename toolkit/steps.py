"""The steps ``train`` and ``process`` share: fetch the code, install it, and run the launcher's command under
the core's supervisor.

toolkit/training.py orders these for a training job and toolkit/processing.py for a processing
job; each keeps only what differs (where the configuration comes from, which file says why a job
failed, the variables the user's process sees).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Mapping, NamedTuple, Optional

import pluggy

from toolkit import process
from toolkit.errors import CodeError
from toolkit.log import log
from toolkit.redact import mask_argv
from toolkit.report import failure_report
from toolkit.settings import read as read_setting
from toolkit.types import Command


def supported_schemes(pm: pluggy.PluginManager) -> str:
    schemes = [s for result in pm.hook.toolkit_fetch_schemes() for s in (result or [])]
    return ", ".join(sorted(set(schemes))) or "none"


def fetch(uri: str, dest: Path, settings: Mapping[str, str], pm: pluggy.PluginManager) -> Path:
    """Ask the fetchers for the code at ``uri``; the folder that holds it."""
    result = pm.hook.toolkit_fetch_code(uri=uri, dest=dest, settings=settings)
    if result is None:
        raise CodeError(f"no fetcher accepts the code location {uri!r}; supported: {supported_schemes(pm)}")
    return Path(result)


def install(code_dir: Path, settings: Mapping[str, str], pm: pluggy.PluginManager,
            requirements: Optional[str] = None) -> None:
    """Ask the installers to install what ``code_dir`` needs: ``requirements`` when the job names a
    file (SDK v3's sourcecode.json), else the file TOOLKIT_REQUIREMENTS names, else their default."""
    requirements = requirements or read_setting(settings, "TOOLKIT_REQUIREMENTS")
    pm.hook.toolkit_install_dependencies(code_dir=code_dir, settings=settings, requirements=requirements)


class Ran(NamedTuple):
    """How the user's command ended: its exit code and, when it failed, the failure report.

    ``signalled`` is the stop signal forwarded to it when the stop came from outside: such a run
    is never a success, and the caller writes the failure file (it knows the step and the words)."""

    exit_code: int
    report: str
    seconds: float
    signalled: Optional[int] = None


def run_command(command: Command, code_dir: Path, child_env: Mapping[str, str], grace: float) -> Ran:
    """Run ``command`` under the core's supervisor (signals forwarded, stderr's tail kept); the caller
    writes the failure file from ``report`` (it knows which file, and the words for a stop)."""
    log.info("run: %s (in %s)", shlex.join(mask_argv(list(command.argv))), command.cwd or code_dir)
    started = time.perf_counter()
    try:
        finished = process.run(command.argv, cwd=command.cwd or code_dir, env=child_env, grace=grace)
    except OSError as exc:
        message = f"cannot start {command.argv[0]}: {exc.strerror or exc}"
        log.error("%s", message)
        return Ran(2, message, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if finished.signalled is not None:
        report = failure_report(finished.stderr_tail, finished.exit_code, list(command.argv))
        return Ran(finished.exit_code or 128 + finished.signalled, report, seconds, finished.signalled)
    if finished.exit_code == 0:
        return Ran(0, "", seconds)
    report = failure_report(finished.stderr_tail, finished.exit_code, list(command.argv))
    log.error("run: failed with exit code %d (%.2f s): %s", finished.exit_code, seconds, report.splitlines()[0])
    return Ran(finished.exit_code, report, seconds)
