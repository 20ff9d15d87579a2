"""``toolkit local ...`` and ``toolkit package``: argv to a request, then the emulator does the rest.

Errors the user can fix print one line (``toolkit local train: <what and how>``) and exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import click

from toolkit.errors import ToolkitError


def _fail(command: str, exc: ToolkitError) -> None:
    click.echo(f"toolkit {command}: {exc}", err=True)
    sys.exit(exc.exit_code)


def _setup_logging() -> None:
    from toolkit import log as tlog
    from toolkit.environment import log_level_from

    tlog.setup(log_level_from(os.environ.get("TOOLKIT_LOG_LEVEL")))


def _sigterm_stops_the_job() -> None:
    """SIGTERM to the emulator stops the hosts as Ctrl-C does (they run in their own sessions)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _default_workdir() -> Path:
    return Path(os.environ.get("TOOLKIT_LOCAL_DIR") or Path(tempfile.gettempdir()) / "toolkit-local")


def _sync_interval() -> float:
    """TOOLKIT_LOCAL_SYNC_SECONDS: how often checkpoints and intermediate output are uploaded."""
    from toolkit.errors import ConfigError
    from toolkit.local.sync import DEFAULT_INTERVAL

    raw = os.environ.get("TOOLKIT_LOCAL_SYNC_SECONDS", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_INTERVAL
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"TOOLKIT_LOCAL_SYNC_SECONDS={raw!r} must be a positive number of seconds")
    return value


def source_options(fn: Callable) -> Callable:
    for option in reversed([
        click.option("--entry-point", help="Script to run: a path, or a name inside --source-dir."),
        click.option("--source-dir", help="Folder packaged as sourcedir.tar.gz (or an s3://.../sourcedir.tar.gz)."),
        click.option("--code-location", help="Where sourcedir.tar.gz goes (default: the output bucket's root)."),
        click.option("--job-name", help="TrainingJobName (default: base name + timestamp, as the SDK makes it)."),
        click.option("--base-job-name", help="Base of the generated job name (default: the image's name)."),
        click.option("--image", help="Run IMAGE train in a container engine instead of this machine's train."),
        click.option("--hyperparameter", "hyperparameters", multiple=True, metavar="NAME=VALUE",
                     help="A hyperparameter (repeatable)."),
        click.option("--output-path", help="S3OutputPath: s3://bucket/prefix, file:///path or a folder."),
        click.option("--log-level", "container_log_level", default=20, show_default=True, type=int,
                     help="sagemaker_container_log_level."),
    ]):
        fn = option(fn)
    return fn


def _overrides(**kw: Any) -> Any:
    from toolkit.local.request import Overrides

    return Overrides(**kw)


def _build_request(request_file: Optional[str], overrides: Any, workdir: Path, entry_point: Optional[str],
                   source_dir: Optional[str], code_location: Optional[str], log_level: int,
                   storage: Any) -> Any:
    from toolkit.local.request import apply_overrides, load_request_file, parse_request
    from toolkit.local.source import package
    from toolkit.local.trainjob import check_unique, region_of

    data = load_request_file(request_file, sys.stdin.read() if request_file == "-" else None) if request_file else {}
    request = parse_request(apply_overrides(data, overrides, default_output=str(workdir)))
    check_unique(workdir, request)
    if entry_point or source_dir:
        packaged = package(storage, job_name=request.job_name, entry_point=entry_point or "",
                           source_dir=source_dir, output_path=request.output_path, code_location=code_location,
                           region=region_of(os.environ), log_level=log_level)
        request = request.with_hyperparameters(packaged.hyperparameters)
    return request


@click.command(name="package")
@source_options
def package_command(entry_point: Optional[str], source_dir: Optional[str], code_location: Optional[str],
                    job_name: Optional[str], base_job_name: Optional[str], image: Optional[str],
                    hyperparameters: tuple[str, ...], output_path: Optional[str], container_log_level: int) -> None:
    """Package and upload the source as the SageMaker SDK does, and print the job's hyperparameters.

    For teams that call the real CreateTrainingJob themselves: pass the printed JSON object as
    its HyperParameters and the printed job name (sagemaker_job_name) as TrainingJobName.
    """
    from toolkit.errors import ConfigError
    from toolkit.local.storage import Storage

    _setup_logging()
    try:
        if not entry_point:
            raise ConfigError("--entry-point is required (the script to run, e.g. train.py)")
        if not output_path and not code_location:
            raise ConfigError("give --output-path or --code-location (where sourcedir.tar.gz is uploaded)")
        overrides = _overrides(job_name=job_name, base_job_name=base_job_name, image=image,
                               hyperparameters=hyperparameters, output_path=output_path or code_location)
        request = _build_request(None, overrides, _default_workdir(), entry_point, source_dir, code_location,
                                 container_log_level, Storage(os.environ))
    except ToolkitError as exc:
        _fail("package", exc)
    click.echo(json.dumps(dict(request.hyperparameters), indent=2))


@click.group(name="local")
def local_group() -> None:
    """Run training jobs on this machine as SageMaker does, with the same S3 layout."""


@local_group.command("train")
@click.option("--request", "request_file", metavar="FILE",
              help="A CreateTrainingJob request as JSON ('-' reads stdin); options below override its fields.")
@source_options
@click.option("--channel", "channels", multiple=True, metavar="NAME=URI",
              help="An input channel: s3://bucket/prefix, file:///path or a local path (repeatable).")
@click.option("--input-mode", type=click.Choice(["File", "Pipe", "FastFile"]), help="TrainingInputMode.")
@click.option("--distribution", type=click.Choice(["FullyReplicated", "ShardedByS3Key"]),
              help="S3DataDistributionType of the --channel channels.")
@click.option("--environment", "environment", multiple=True, metavar="NAME=VALUE",
              help="A variable of the job's Environment (repeatable).")
@click.option("--instance-count", type=click.IntRange(min=1), help="Number of hosts (algo-1..algo-N).")
@click.option("--instance-type", help="Shown to the job as its instance type (default: local).")
@click.option("--checkpoint-s3-uri", help="CheckpointConfig.S3Uri.")
@click.option("--checkpoint-local-path", help="CheckpointConfig.LocalPath (default /opt/ml/checkpoints).")
@click.option("--max-run", type=click.IntRange(min=1), help="StoppingCondition.MaxRuntimeInSeconds.")
@click.option("--kill-after", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds between SIGTERM and SIGKILL when the job is stopped.")
@click.option("--engine", type=click.Choice(["docker", "podman"]), help="Container engine (default: docker, "
              "else podman).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where job folders go (default: "
              "$TOOLKIT_LOCAL_DIR or <tmp>/toolkit-local); also the default output path.")
def train_command(request_file: Optional[str], entry_point: Optional[str], source_dir: Optional[str],
                  code_location: Optional[str], job_name: Optional[str], base_job_name: Optional[str],
                  image: Optional[str], hyperparameters: tuple[str, ...], output_path: Optional[str],
                  container_log_level: int, channels: tuple[str, ...], input_mode: Optional[str],
                  distribution: Optional[str], environment: tuple[str, ...], instance_count: Optional[int],
                  instance_type: Optional[str], checkpoint_s3_uri: Optional[str],
                  checkpoint_local_path: Optional[str], max_run: Optional[int], kill_after: float,
                  engine: Optional[str], workdir: Optional[str]) -> None:
    """Run a training job here: data in, `train` on every host, artifacts out, as the platform does.

    Exits with the job's exit code (the first failed host's), or 2 when the request is wrong.
    """
    from toolkit.local.storage import Storage
    from toolkit.local.trainjob import RunOptions, run_training_job

    _setup_logging()
    root = Path(workdir).absolute() if workdir else _default_workdir()
    storage = Storage(os.environ)
    try:
        overrides = _overrides(
            job_name=job_name, base_job_name=base_job_name, image=image, channels=channels, input_mode=input_mode,
            distribution=distribution, hyperparameters=hyperparameters, environment=environment,
            output_path=output_path, instance_count=instance_count, instance_type=instance_type,
            checkpoint_uri=checkpoint_s3_uri, checkpoint_local_path=checkpoint_local_path, max_run=max_run)
        request = _build_request(request_file, overrides, root, entry_point, source_dir, code_location,
                                 container_log_level, storage)
        sync_interval = _sync_interval()
    except ToolkitError as exc:
        _fail("local train", exc)
    _sigterm_stops_the_job()
    options = RunOptions(workdir=root, engine=engine, kill_after=kill_after, sync_interval=sync_interval)
    result = run_training_job(request, options, os.environ, storage)
    for line in result.summary:
        click.echo(line, err=True)
    sys.exit(result.exit_code)
