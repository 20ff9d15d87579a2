"""The train flow: parse -> fetch -> install -> launch -> supervise -> report.

Each step is a hook; this module only orders them, times them, and turns every outcome into
what SageMaker reads: the exit code and /opt/ml/output/success or /opt/ml/output/failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, Optional

import pluggy

from toolkit import log as tlog
from toolkit import process, sdkv3, settings, steps
from toolkit.environment import DEFAULT_BASE_DIR, TrainingEnv, check_entry_point, log_level_from
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


def fetch_code(env: TrainingEnv, pm: pluggy.PluginManager, scratch: Optional[list[Path]] = None) -> Path:
    """Where the code is: fetched from the submit directory when one is given, else
    /opt/ml/code. A remote download wins over code baked into the image (logged); it goes into
    a new folder in $TMPDIR, added to ``scratch`` for the caller to remove when the job ends."""
    if not env.submit_dir:
        return env.code_dir
    dest = env.code_dir
    if dest.exists() and any(dest.iterdir()):
        folder = Path(tempfile.mkdtemp(prefix="toolkit-code-"))
        if scratch is not None:
            scratch.append(folder)
        dest = folder / "code"
        remote = "://" in env.submit_dir and not env.submit_dir.startswith("file://")
        if remote:
            log.info("code in %s is replaced by %s (the submit directory wins)", env.code_dir, mask_uri(env.submit_dir))
    elif dest.exists():
        dest.rmdir()
    return steps.fetch(env.submit_dir, dest, env.settings_view(), pm)


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


def launch(
    env: TrainingEnv, pm: pluggy.PluginManager, code_dir: Path, v3: Optional[sdkv3.SourceCode]
) -> Command:
    """Ask the launchers what to run. A v3 ``command`` runs through the shell as the SDK's own
    driver runs it, whatever distributed.json says (the SDK's driver does the same)."""
    args = sdkv3.v3_args(env.hyperparameters) if v3 is not None else env.user_args()
    if v3 is not None and v3.command:
        return Command(sdkv3.shell(v3.command), cwd=code_dir, name="SDK v3 command")
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


def _base_dir(environ: Mapping[str, str], base_dir: Optional[str]) -> Path:
    return Path(base_dir or environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR)


class _Run:
    """One ``train`` call's state, so that a stop or an error at any step can be reported with
    what is known by then, and what the run made in $TMPDIR is removed whatever happens."""

    def __init__(self, environ: Mapping[str, str], base_dir: Optional[str], pm: Optional[pluggy.PluginManager]):
        self.environ = environ
        self.base_dir = base_dir
        self.pm = pm
        self.env: Optional[TrainingEnv] = None
        self.command: Optional[Command] = None
        self.durations: dict[str, float] = {}
        self.step = "read config"
        self.scratch: list[Path] = []
        self.failure_path = _base_dir(environ, base_dir) / "output" / "failure"


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
        return _train(run)
    except process.Stopped as stop:
        return _stopped(run, stop.signum)
    except Exception as exc:  # a bug (ours or a plugin's): the traceback goes to the log, one line to the failure file
        log.exception("unexpected error during %s", run.step)
        message = f"internal error during {run.step}: {type(exc).__name__}: {exc} (the log has the traceback)"
        write_failure(run.failure_path, message)
        _after(run.pm, run.env, Outcome(1, run.command, message, run.durations))
        return 1
    finally:
        for folder in run.scratch:
            _remove_tree(folder)
        process.restore_signals(previous)


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _stopped(run: _Run, signum: int, report: str = "") -> int:
    """The failure file and exit code of a job stopped by signal ``signum`` during ``run.step``."""
    name = process.signal_name(signum)
    message = f"stopped by {name} during {run.step}" + (" (the job did not start)" if run.step != "run" else "")
    log.error("%s", message)
    write_failure(run.failure_path, message + (f"\n{report}" if report else ""))
    _after(run.pm, run.env, Outcome(128 + signum, run.command, message, run.durations))
    return 128 + signum


def _train(run: _Run) -> int:
    started = time.perf_counter()
    environ = run.environ
    tlog.setup(log_level_from(environ.get("TOOLKIT_LOG_LEVEL")), defer=True)
    base = _base_dir(environ, run.base_dir)
    for stale in (base / "output" / "success", run.failure_path):  # left by an earlier run on this /opt/ml
        if stale.exists() or stale.is_symlink():
            stale.unlink()
    try:
        settings.check_training(environ)
        env = run.env = TrainingEnv.from_environ(environ, run.base_dir)
        run.durations["config"] = time.perf_counter() - started
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
        v3 = sdkv3.source_code(env)
        with tlog.step("fetch code") as s:
            if v3 is not None:
                code_dir = v3.code_dir
                env = env.with_changes(entry_point=check_entry_point(v3.entry_script) or env.entry_point)
                s["what"] = f"{code_dir} (SDK v3 code channel)"
            else:
                code_dir = fetch_code(env, pm, run.scratch)
                check_code(env, code_dir)
                s["what"] = str(code_dir)
        run.durations["fetch"] = s["seconds"]
        env = run.env = env.with_changes(source_dir=code_dir)
        run.step = "install dependencies"
        with tlog.step("install dependencies") as s:
            steps.install(code_dir, env.settings_view(), pm, v3.requirements if v3 is not None else None)
        run.durations["install"] = s["seconds"]
        run.step = "launch"
        command = run.command = launch(env, pm, code_dir, v3)
        for folder in (env.model_dir, env.output_data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        child_env = child_environment(env, pm, command)
        grace = settings.stop_grace(env.environ)
    except ToolkitError as exc:
        log.error("%s", exc)
        write_failure(run.failure_path, str(exc))
        _after(run.pm, run.env, Outcome(exc.exit_code, run.command, str(exc), run.durations))
        return exc.exit_code

    run.step = "run"
    ran = steps.run_command(command, code_dir, child_env, grace, env.failure_file)
    run.durations["run"] = ran.seconds
    if ran.signalled is not None:  # stopped from outside: never a success, whatever the job did
        stopped = _stopped(run, ran.signalled, ran.report)
        return ran.exit_code or stopped
    if ran.exit_code == 0:
        write_atomic(env.success_file, b"")
        log.info("run: succeeded (%.2f s); total %.2f s", ran.seconds, time.perf_counter() - started)
    _after(pm, env, Outcome(ran.exit_code, command, ran.report, run.durations))
    return ran.exit_code


def _after(pm: Optional[pluggy.PluginManager], env: Optional[TrainingEnv], outcome: Outcome) -> None:
    if pm is None or env is None:
        return
    try:
        pm.hook.toolkit_after_training(env=env, outcome=outcome)
    except Exception:  # a reporting plugin must not change the job's result
        log.exception("a toolkit_after_training plugin failed (the job's result is unchanged)")
