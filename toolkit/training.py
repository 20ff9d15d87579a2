"""The train flow: plan -> run -> conclude.

- plan: read the config into a TrainingEnv and what the job asks for (a ``Plan``: where the code is,
  the entry point, its arguments, the requirements file), with the SDK v3 contract read by the
  ``sdkv3`` built-in plugin;
- run: fetch, install, launch (each a hook) and supervise the command; every way this can end (a
  refusal, a stop signal, a bug, the command's own exit) becomes one ``Outcome``;
- conclude: the one place that writes /opt/ml/output/success or /opt/ml/output/failure and calls
  ``toolkit_after_training``; ``train`` exits with ``outcome.exit_code``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, NamedTuple, Optional

import pluggy

from toolkit import log as tlog
from toolkit import process, settings, steps
from toolkit.builtin import sdkv3
from toolkit.environment import TrainingEnv, check_entry_point
from toolkit.errors import CodeError, ConfigError, ToolkitError
from toolkit.lazy import lazy
from toolkit.log import log
from toolkit.manager import get_plugin_manager
from toolkit.redact import mask_uri
from toolkit.report import write_atomic, write_failure
from toolkit.types import Command, Outcome

tempfile = lazy("tempfile")

# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def check_channels(env: TrainingEnv) -> None:
    """A File-mode (or FastFile) channel whose folder is missing means the data never arrived."""
    for name, spec in env.input_data_config.items():
        mode = str(spec.get("TrainingInputMode", "File"))
        if mode in ("File", "FastFile") and not env.channel_dir(name).is_dir():
            raise ConfigError(
                f"channel {name!r} ({mode} mode) has no folder {env.channel_dir(name)}; "
                f"SageMaker puts its data there before the job starts"
            )


def fetch_code(env: TrainingEnv, uri: Optional[str], pm: pluggy.PluginManager, scratch: list[Path]) -> Path:
    """Where the code is: fetched from ``uri`` when there is one, else /opt/ml/code. A remote
    download wins over code baked into the image (logged); it goes into a new folder in $TMPDIR,
    added to ``scratch`` for the caller to remove when the job ends."""
    if not uri:
        return env.code_dir
    dest = env.code_dir
    if dest.exists() and any(dest.iterdir()):
        folder = Path(tempfile.mkdtemp(prefix="toolkit-code-"))
        scratch.append(folder)
        dest = folder / "code"
        if "://" in uri and not uri.startswith("file://"):
            log.info("code in %s is replaced by %s (the submit directory wins)", env.code_dir, mask_uri(uri))
    elif dest.exists():
        dest.rmdir()
    return steps.fetch(uri, dest, env.settings_view(), pm)


def check_code(env: TrainingEnv, code_dir: Path) -> None:
    """Check that an entry point is named and the code directory has something in it."""
    if not env.entry_point:
        raise ConfigError(
            "no entry point: set the sagemaker_program hyperparameter or SAGEMAKER_PROGRAM "
            "to your script's name (e.g. train.py)"
        )
    if not code_dir.is_dir() or not any(code_dir.iterdir()):
        where = f" (from {env.submit_dir})" if env.submit_dir else ""
        raise CodeError(
            f"code directory {code_dir}{where} is empty or missing; put {env.entry_point} there "
            f"or set sagemaker_submit_directory"
        )


def describe_missing(entry: str, code_dir: Path) -> str:
    if (code_dir / entry).exists():
        return f"entry point {entry!r} in {code_dir} is not a file any launcher can run"
    present = sorted(p.name for p in code_dir.iterdir())[:8]
    return (
        f"entry point {entry!r} not found in {code_dir} (it has: {', '.join(present)}); "
        f"check sagemaker_program / SAGEMAKER_PROGRAM"
    )


def launch(env: TrainingEnv, pm: pluggy.PluginManager, code_dir: Path, args: list[str]) -> Command:
    """Ask the launchers what to run."""
    entry = env.entry_point or ""
    command = pm.hook.toolkit_launch(entry_point=entry, code_dir=code_dir, args=args, env=env)
    if command is None:
        raise CodeError(describe_missing(entry, code_dir))
    return command


def child_environment(env: TrainingEnv, pm: pluggy.PluginManager, command: Command) -> dict[str, str]:
    merged = dict(env.environ)
    # pluggy returns the last-registered (third-party) result first: apply built-ins first so
    # plugins win on a clash.
    for result in reversed(pm.hook.toolkit_environment(env=env)):
        merged.update(result or {})
    merged.update(command.env)
    # as sagemaker-training: modules beside the entry point import from anywhere in the code dir
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(env.source_dir or ""), merged.get("PYTHONPATH")) if p)
    return merged


# --------------------------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------------------------


class Plan(NamedTuple):
    """What the job asks for, read before anything is fetched or run."""

    env: TrainingEnv  # with the entry point resolved
    code_uri: Optional[str]  # where the code comes from; None: the code in /opt/ml/code
    args: list[str]  # the hyperparameters as the entry point's arguments
    requirements: Optional[str]  # the requirements file the job names
    sdk_v3: bool


def plan(env: TrainingEnv) -> Plan:
    """The classic contract (sagemaker_program, sagemaker_submit_directory, hyperparameters as
    ``--key value``), or the SDK v3 one when its sourcecode.json and code channel are there."""
    v3 = sdkv3.read(env)
    if v3 is None:
        return Plan(env, env.submit_dir, env.user_args(), None, False)
    env = env.with_changes(entry_point=check_entry_point(v3.entry_script) or env.entry_point)
    return Plan(env, v3.uri, sdkv3.v3_args(env.hyperparameters), v3.requirements, True)


class _Run:
    """One ``train`` call's state, so that a stop or an error at any step ends with what is known
    by then, and what the run made in $TMPDIR is removed whatever happens."""

    def __init__(self, environ: Mapping[str, str], base_dir: Optional[str], pm: Optional[pluggy.PluginManager]):
        self.environ = environ
        self.base_dir = base_dir
        self.pm = pm
        self.env: Optional[TrainingEnv] = None
        self.command: Optional[Command] = None
        self.durations: dict[str, float] = {}
        self.step = "read config"
        self.scratch: list[Path] = []
        self.started = time.perf_counter()
        self.failure_path = settings.base_dir(environ, base_dir) / "output" / "failure"

    def outcome(self, exit_code: int, failure: str = "") -> Outcome:
        return Outcome(exit_code, self.command, failure, self.durations)


def train(
    environ: Mapping[str, str],
    base_dir: Optional[str] = None,
    pm: Optional[pluggy.PluginManager] = None,
) -> int:
    """Run one training job; return the exit code ``train`` should exit with.

    A stop signal (SIGTERM, SIGINT, SIGHUP) ends whatever step runs, the job's own process
    included, within TOOLKIT_STOP_GRACE_SECONDS; the failure file then names the signal and the
    step, and the exit code is 128+N.
    """
    previous = process.stop_on_signals()
    run = _Run(environ, base_dir, pm)
    try:
        return conclude(run, _run(run))
    finally:
        for folder in run.scratch:
            _remove_tree(folder)
        process.restore_signals(previous)


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _run(run: _Run) -> Outcome:
    """Every way a job ends, as one Outcome."""
    try:
        return _start_and_supervise(run)
    except process.Stopped as stop:
        return _stopped(run, stop.signum)
    except ToolkitError as exc:
        log.error("%s", exc)
        return run.outcome(exc.exit_code, str(exc))
    except Exception as exc:  # a bug (ours or a plugin's): the traceback goes to the log, one line to the failure file
        return _internal_error(run, exc)


def _internal_error(run: _Run, exc: Exception) -> Outcome:
    log.exception("unexpected error during %s", run.step)
    return run.outcome(1, f"internal error during {run.step}: {type(exc).__name__}: {exc} (the log has the traceback)")


def _stopped(run: _Run, signum: int, report: str = "", exit_code: Optional[int] = None) -> Outcome:
    """A job stopped by signal ``signum`` during ``run.step``: 128+N unless the job's own process exited
    with a code of its own."""
    message = f"stopped by {process.signal_name(signum)} during {run.step}"
    message += " (the job did not start)" if run.step != "run" else ""
    log.error("%s", message)
    return run.outcome(exit_code or 128 + signum, message + (f"\n{report}" if report else ""))


def _start_and_supervise(run: _Run) -> Outcome:
    environ = run.environ
    tlog.setup(settings.startup_log_level(environ), defer=True)
    for stale in (run.failure_path.parent / "success", run.failure_path):  # left by an earlier run on this /opt/ml
        if stale.exists() or stale.is_symlink():
            stale.unlink()
    settings.check(environ, "train")
    env = run.env = TrainingEnv.from_environ(environ, run.base_dir)
    run.durations["config"] = time.perf_counter() - run.started
    tlog.setup(env.log_level, defer=True)  # the job's own level applies from here on
    log.info("read config: %s of %d host(s), base %s (%.2f s)",
             env.current_host, len(env.hosts), env.base_dir, run.durations["config"])
    for warning in env.warnings:
        log.warning("%s", warning)
    run.step = "load plugins"
    pm = run.pm = run.pm or get_plugin_manager(environ, training=True)
    tlog.sync()  # a plugin that logs may have loaded logging: give its lines our format
    check_channels(env)
    run.step = "fetch code"
    job = plan(env)
    env = job.env
    with tlog.step("fetch code") as s:
        code_dir = fetch_code(env, job.code_uri, pm, run.scratch)
        if not job.sdk_v3:
            check_code(env, code_dir)
        s["what"] = f"{code_dir} (SDK v3 code channel)" if job.sdk_v3 else str(code_dir)
    run.durations["fetch"] = s["seconds"]
    env = run.env = env.with_changes(source_dir=code_dir)
    run.step = "install dependencies"
    with tlog.step("install dependencies") as s:
        steps.install(code_dir, env.settings_view(), pm, job.requirements)
    run.durations["install"] = s["seconds"]
    run.step = "launch"
    command = run.command = launch(env, pm, code_dir, job.args)
    for folder in (env.model_dir, env.output_data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    child_env = child_environment(env, pm, command)
    grace = settings.read(env.environ, "TOOLKIT_STOP_GRACE_SECONDS")

    run.step = "run"
    ran = steps.run_command(command, code_dir, child_env, grace)
    run.durations["run"] = ran.seconds
    if ran.signalled is not None:  # stopped from outside: never a success, whatever the job did
        return _stopped(run, ran.signalled, ran.report, ran.exit_code)
    if ran.exit_code == 0:
        log.info("run: succeeded (%.2f s); total %.2f s", ran.seconds, time.perf_counter() - run.started)
    return run.outcome(ran.exit_code, ran.report)


def conclude(run: _Run, outcome: Outcome) -> int:
    """The one exit: the success or failure file, then ``toolkit_after_training``; the exit code."""
    if outcome.exit_code == 0 and run.env is not None:
        try:
            write_atomic(run.env.success_file, b"")
        except OSError as exc:
            outcome = _internal_error(run, exc)
    if outcome.exit_code != 0:
        write_failure(run.failure_path, outcome.failure)
    if run.pm is not None and run.env is not None:
        try:
            run.pm.hook.toolkit_after_training(env=run.env, outcome=outcome)
        except process.Stopped as stop:  # a stop is never a success, even after the job's own end
            run.step = "toolkit_after_training"
            stopped = _stopped(run, stop.signum)
            write_failure(run.failure_path, stopped.failure)
            return stopped.exit_code
        except Exception:  # a reporting plugin must not change the job's result
            log.exception("a toolkit_after_training plugin failed (the job's result is unchanged)")
    return outcome.exit_code
