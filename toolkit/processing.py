"""The process flow: what ``process ENTRY ARGS...`` does inside a processing job's container.

The same steps as ``train`` (toolkit/steps.py and the same hooks: fetch, install, launch, the
core's supervisor), with what a processing job has instead of a training job's configuration:

- the entry point and its arguments come from the command line (the request's
  ContainerEntrypoint + ContainerArguments), never re-split;
- the code is the entry's folder; a ``sourcedir.tar.gz`` there (FrameworkProcessor ships one)
  or SAGEMAKER_SUBMIT_DIRECTORY is fetched first, and ``requirements.txt`` is installed;
- the job's facts (processingjobconfig.json, resourceconfig.json) are exported as
  SM_PROCESSING_* variables;
- a failure is explained in /opt/ml/output/message, which the platform shows as ExitMessage.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pluggy

from toolkit import log as tlog
from toolkit import process as supervisor
from toolkit import settings, steps
from toolkit.environment import ProcessingEnv, which
from toolkit.errors import CodeError, ConfigError, ToolkitError
from toolkit.lazy import lazy
from toolkit.log import log
from toolkit.manager import get_plugin_manager
from toolkit.report import write_failure
from toolkit.types import Command

shutil = lazy("shutil")
tempfile = lazy("tempfile")

SOURCE_ARCHIVE = "sourcedir.tar.gz"  # what FrameworkProcessor puts in /opt/ml/processing/input/code


def locate(entry: str, cwd: Path) -> tuple[Path, str]:
    """(code folder, entry point relative to it): an absolute path's folder and name; a relative
    path or module name from the working folder (runproc.sh runs ``cd code; COMMAND script.py``)."""
    path = Path(entry)
    if path.is_absolute():
        return path.parent, path.name
    return cwd, entry


def fetch_code(env: ProcessingEnv, pm: pluggy.PluginManager, code_dir: Path, entry: str,
               scratch: list[Path]) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY when set; else a sourcedir.tar.gz beside a missing entry point
    (extracted once: runproc.sh may have done it already); else the folder as it is. A download
    goes into a new folder in $TMPDIR, added to ``scratch`` for the caller to remove."""
    archive = code_dir / SOURCE_ARCHIVE
    uri = env.submit_dir or (str(archive) if archive.is_file() and not (code_dir / entry).exists() else None)
    if uri is None:
        return code_dir
    folder = Path(tempfile.mkdtemp(prefix="toolkit-code-"))
    scratch.append(folder)
    return steps.fetch(uri, folder / "code", env.settings_view(), pm)


def launch(env: ProcessingEnv, pm: pluggy.PluginManager, code_dir: Path, entry: str,
           args: Sequence[str]) -> Command:
    """Ask the launchers (the same ones as ``train``); an executable on PATH comes last."""
    command = pm.hook.toolkit_launch(entry_point=entry, code_dir=code_dir, args=list(args),
                                     env=env.training_view(code_dir, entry))
    if command is not None:
        return command
    found = which(entry, env.environ.get("PATH")) if "/" not in entry else None
    if found:
        return Command([found, *args], cwd=code_dir, name="executable on PATH")
    present = sorted(p.name for p in code_dir.iterdir())[:8] if code_dir.is_dir() else []
    raise CodeError(
        f"entry point {entry!r} is not in {code_dir} (it has: {', '.join(present) or 'nothing'}) nor on PATH; "
        f"give process a .py file, a module, a shell script or an executable"
    )


def child_environment(env: ProcessingEnv, command: Command, code_dir: Path) -> dict[str, str]:
    """The command's environment: the SM_PROCESSING_* variables, and on PYTHONPATH the code folder first
    and the stand-ins for the AWS packages last (as ``train`` gives its script; a real package wins)."""
    from toolkit.builtin.variables import processing_variables
    from toolkit.compat import importing as compat

    merged = {**env.environ, **processing_variables(env), **command.env}
    path = os.pathsep.join(p for p in (str(code_dir), merged.get("PYTHONPATH")) if p)
    merged["PYTHONPATH"] = compat.pythonpath(path)
    return merged


def check_message(path: Path) -> None:
    """The platform fails a job whose message file is not UTF-8: say so while it can be fixed."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.error("%s is not UTF-8 (byte %d): SageMaker fails a job whose message file is not UTF-8; "
                  "write it as UTF-8", path, exc.start)


def process(argv: Sequence[str], environ: Mapping[str, str], base_dir: Optional[str] = None,
            pm: Optional[pluggy.PluginManager] = None) -> int:
    """Run one processing job's command; return the exit code ``process`` should exit with.

    A stop signal ends whatever step runs (as for ``train``): the message file names the signal
    and the step, and the exit code is 128+N."""
    previous = supervisor.stop_on_signals()
    message = settings.base_dir(environ, base_dir) / "output" / "message"
    step = ["read config"]
    scratch: list[Path] = []
    try:
        return _process(argv, environ, base_dir, pm, message, step, scratch)
    except supervisor.Stopped as stop:
        return _stopped(message, stop.signum, step[0])
    finally:
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
        supervisor.restore_signals(previous)


def _stopped(message: Path, signum: int, step: str, report: str = "") -> int:
    text = f"stopped by {supervisor.signal_name(signum)} during {step}"
    log.error("%s", text)
    write_failure(message, text + (f"\n{report}" if report else ""))
    return 128 + signum


def _process(argv: Sequence[str], environ: Mapping[str, str], base_dir: Optional[str],
             pm: Optional[pluggy.PluginManager], message: Path, step: list[str], scratch: list[Path]) -> int:
    started = time.perf_counter()
    tlog.setup(settings.startup_log_level(environ), defer=True)
    try:
        env = ProcessingEnv.from_environ(environ, base_dir)
        message = env.message_file
        if message.exists():  # a previous run's: this run has said nothing yet
            message.unlink()
        tlog.setup(env.log_level, defer=True)
        for warning in env.warnings:
            log.warning("%s", warning)
        if not argv or not argv[0]:
            raise ConfigError("no entry point: run `process SCRIPT [ARGS...]` (a .py file, a module, a shell "
                              "script or an executable), e.g. ContainerEntrypoint [\"process\", \"prep.py\"]")
        log.info("processing job %s: %s of %d host(s)", env.job_name or "(no name)", env.current_host,
                 len(env.hosts))
        grace = settings.read(env.environ, "TOOLKIT_STOP_GRACE_SECONDS")
        pm = pm or get_plugin_manager(environ, training=True)
        tlog.sync()
        code_dir, entry = locate(argv[0], Path.cwd())
        step[0] = "fetch code"
        with tlog.step("fetch code") as s:
            code_dir = fetch_code(env, pm, code_dir, entry, scratch)
            s["what"] = str(code_dir)
        step[0] = "install dependencies"
        with tlog.step("install dependencies"):
            steps.install(code_dir, env.settings_view(), pm)
        step[0] = "launch"
        command = launch(env, pm, code_dir, entry, argv[1:])
        child_env = child_environment(env, command, code_dir)
    except ToolkitError as exc:
        log.error("%s", exc)
        write_failure(message, str(exc))
        return exc.exit_code
    step[0] = "run"
    ran = steps.run_command(command, code_dir, child_env, grace)
    if ran.signalled is not None:
        return ran.exit_code if ran.exit_code else _stopped(message, ran.signalled, "run", ran.report)
    if ran.exit_code == 0:
        log.info("run: succeeded (%.2f s); total %.2f s", ran.seconds, time.perf_counter() - started)
    else:
        write_failure(message, ran.report)
    check_message(message)
    return ran.exit_code
