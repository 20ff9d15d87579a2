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

from toolkit.cli import fail
from toolkit.errors import ToolkitError


def _setup_logging() -> None:
    from toolkit import log as tlog
    from toolkit import settings

    try:
        tlog.setup(settings.read(os.environ, "TOOLKIT_LOG_LEVEL"))
    except ToolkitError as exc:
        fail("local", exc)


def _sigterm_stops_the_job() -> None:
    """SIGTERM to the emulator stops the hosts as Ctrl-C does (they run in their own sessions)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _default_workdir() -> Path:
    from toolkit import settings

    return Path(settings.read(os.environ, "TOOLKIT_LOCAL_DIR") or Path(tempfile.gettempdir()) / "toolkit-local")


def _sync_interval() -> float:
    """TOOLKIT_LOCAL_SYNC_SECONDS: how often checkpoints and intermediate output are uploaded."""
    from toolkit import settings

    return float(settings.read(os.environ, "TOOLKIT_LOCAL_SYNC_SECONDS"))


def source_options(fn: Callable) -> Callable:
    for option in reversed([
        click.option("--entry-point", help="Script to run: a path, or a name inside --source-dir."),
        click.option("--source-dir", help="Folder packaged as sourcedir.tar.gz (or an s3://.../sourcedir.tar.gz)."),
        click.option("--code-location", help="Where sourcedir.tar.gz goes (default: the output bucket's root)."),
        click.option("--job-name", help="TrainingJobName (default: base name + timestamp, as the SDK makes it)."),
        click.option("--base-job-name", help="Base of the generated job name (default: the image's name)."),
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
@click.option("--image", help="Only picks the base of the generated job name, as the SDK does (nothing is run).")
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
        fail("package", exc)
    click.echo(json.dumps(dict(request.hyperparameters), indent=2))


@click.group(name="local")
def local_group() -> None:
    """Training jobs, endpoints and batch transforms on this machine, as SageMaker runs them."""


@local_group.command("train")
@click.option("--request", "request_file", metavar="FILE",
              help="A CreateTrainingJob request as JSON ('-' reads stdin); options below override its fields.")
@source_options
@click.option("--image", help="Run IMAGE train in a container engine instead of this machine's train.")
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
@click.option("--in-process", is_flag=True, help="Ignore the request's TrainingImage: run this machine's train "
              "(to replay a real request without its image).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where job folders go (default: "
              "$TOOLKIT_LOCAL_DIR or <tmp>/toolkit-local); also the default output path.")
def train_command(request_file: Optional[str], entry_point: Optional[str], source_dir: Optional[str],
                  code_location: Optional[str], job_name: Optional[str], base_job_name: Optional[str],
                  image: Optional[str], hyperparameters: tuple[str, ...], output_path: Optional[str],
                  container_log_level: int, channels: tuple[str, ...], input_mode: Optional[str],
                  distribution: Optional[str], environment: tuple[str, ...], instance_count: Optional[int],
                  instance_type: Optional[str], checkpoint_s3_uri: Optional[str],
                  checkpoint_local_path: Optional[str], max_run: Optional[int], kill_after: float,
                  engine: Optional[str], in_process: bool, workdir: Optional[str]) -> None:
    """Run a training job here: data in, `train` on every host, artifacts out, as the platform does.

    Exits with the job's exit code (the first failed host's), or 2 when the request is wrong.
    """
    import dataclasses

    from toolkit.errors import ConfigError
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
        if in_process:
            if image:
                raise ConfigError("--in-process and --image contradict each other; give one of them")
            request = dataclasses.replace(request, image=None)
        sync_interval = _sync_interval()
    except ToolkitError as exc:
        fail("local train", exc)
    _sigterm_stops_the_job()
    local_source = None if (source_dir or "").startswith("s3://") else (source_dir or entry_point)
    options = RunOptions(workdir=root, engine=engine, kill_after=kill_after, sync_interval=sync_interval,
                         source=Path(local_source).absolute() if local_source else None)
    result = run_training_job(request, options, os.environ, storage)
    for line in result.summary:
        click.echo(line, err=True)
    sys.exit(result.exit_code)


def _environment(pairs: tuple[str, ...]) -> dict[str, str]:
    from toolkit.local.request import key_value

    return dict(key_value(text, "--environment") for text in pairs)


def _model_base(root: Path, name: Optional[str], prefix: str) -> Path:
    from toolkit.errors import ConfigError
    from toolkit.local.request import check_job_name, name_from_base

    job = check_job_name(name) if name else name_from_base(prefix)
    base = root / job
    if base.exists():
        raise ConfigError(f"{base} already exists; choose another --job-name or remove it")
    base.mkdir(parents=True)
    return base


def serving_code_options(fn: Callable) -> Callable:
    """The inference code and the wait for /ping, shared by serve and transform."""
    for option in reversed([
        click.option("--source-dir", help="Folder of inference code, packed into the model's code/ as the SDK's "
                     "Model(source_dir=) does."),
        click.option("--entry-point", help="The inference script (SAGEMAKER_PROGRAM): a name inside --source-dir, "
                     "or a path."),
        click.option("--ready-timeout", type=click.FloatRange(min=0, min_open=True), default=120.0,
                     show_default=True, help="Seconds to wait for GET /ping to answer 200 before giving up."),
    ]):
        fn = option(fn)
    return fn


def _serving_code(root: Path, base: Path, env: dict[str, str], source_dir: Optional[str],
                  entry_point: Optional[str], image: Optional[str]) -> tuple[dict[str, str], Any]:
    """The server's variables once its code is in place, and (in-process) its own environment."""
    from toolkit.errors import ConfigError
    from toolkit.local import jobenv
    from toolkit.local.endpoint import pack_code, resolve_submit_dir, serving_requirements

    if source_dir and not entry_point:
        raise ConfigError("--source-dir needs --entry-point (the inference script in it, e.g. inference.py)")
    if entry_point:
        env = {**env, **pack_code(base / "model", source_dir, entry_point)}
        if image:
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = "/opt/ml/model/code"
    env = resolve_submit_dir(env, Path.cwd())
    if image:
        return env, None
    return env, jobenv.prepare(root, base, serving_requirements(base, env), os.environ)


@local_group.command("serve")
@click.argument("model")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to serve on.")
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--environment", "environment", multiple=True, metavar="NAME=VALUE",
              help="A variable for the server (repeatable), e.g. SAGEMAKER_PROGRAM=inference.py.")
@click.option("--image", help="Run IMAGE serve in a container engine instead of this machine's serve.")
@click.option("--engine", type=click.Choice(["docker", "podman"]), help="Container engine.")
@click.option("--job-name", help="Name of the model folder under the work folder (default: generated).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where the model is extracted.")
@serving_code_options
def serve_command(model: str, port: int, bind_host: str, environment: tuple[str, ...], image: Optional[str],
                  engine: Optional[str], job_name: Optional[str], workdir: Optional[str], source_dir: Optional[str],
                  entry_point: Optional[str], ready_timeout: float) -> None:
    """Serve MODEL (a model.tar.gz in S3 or here, or a model folder) as an endpoint does.

    The model is extracted into <workdir>/<name>/model (the server's /opt/ml/model) and `serve`
    starts on PORT; Ctrl-C or SIGTERM stops it.
    """
    from toolkit.local.endpoint import prepare_model, start_server
    from toolkit.local.hosts import ready_engine
    from toolkit.local.storage import Storage

    _setup_logging()
    root = Path(workdir).absolute() if workdir else _default_workdir()
    try:
        env = _environment(environment)
        if image:
            engine = ready_engine(os.environ, engine)
        base = _model_base(root, job_name, "toolkit-local-endpoint")
        prepare_model(Storage(os.environ), model, base, os.environ)
        env, own = _serving_code(root, base, env, source_dir, entry_point, image)
        server = start_server(base, port, os.environ, env, bind_host=bind_host, image=image, engine=engine,
                              name=base.name, jobenv=own)
    except ToolkitError as exc:
        fail("local serve", exc)
    _sigterm_stops_the_job()
    try:
        seconds = server.wait_ready(ready_timeout)
        click.echo(f"toolkit local serve: {model} answers at http://{bind_host}:{port} ({seconds:.2f} s to the "
                   f"first /ping 200); Ctrl-C stops it", err=True)
        server.process.wait()
    except ToolkitError as exc:
        server.stop()
        fail("local serve", exc)
    except KeyboardInterrupt:
        pass
    sys.exit(server.stop())


@local_group.command("clean")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every job folder and job environment in the work folder.")
@click.option("--older-than", metavar="AGE", help="Only what is unchanged for AGE: 30m, 12h, 7d, 2w.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@click.option("--workdir", type=click.Path(file_okay=False), help="The work folder (default: $TOOLKIT_LOCAL_DIR "
              "or <tmp>/toolkit-local).")
def clean_command(names: tuple[str, ...], everything: bool, older_than: Optional[str], dry_run: bool,
                  workdir: Optional[str]) -> None:
    """Remove job folders (data, model, output, describe file) and job environments.

    NAMES are job names (as `toolkit local train` printed them); --all takes every one,
    --older-than those unchanged for that long (with NAMES: the named ones that old).
    """
    from toolkit.local.clean import entries, parse_age, remove, select, tidy
    from toolkit.local.progress import human_bytes

    root = Path(workdir).absolute() if workdir else _default_workdir()
    try:
        age = parse_age(older_than) if older_than else None
        chosen = select(entries(root), names, everything, age)
    except ToolkitError as exc:
        fail("local clean", exc)
    total = 0
    for entry in chosen:
        size = entry.bytes if dry_run else remove(entry)
        total += size
        click.echo(f"{'would remove' if dry_run else 'removed'} {entry.name} ({human_bytes(size)})", err=True)
    if not dry_run:
        tidy(root)
    click.echo(f"toolkit local clean: {len(chosen)} {'would be ' if dry_run else ''}removed from {root}, "
               f"{human_bytes(total)} {'would be ' if dry_run else ''}freed", err=True)


@local_group.command("transform")
@click.option("--model", help="model.tar.gz (S3 or here) or model folder: a server is started for the job.")
@click.option("--endpoint", "endpoint_url", help="Use the server already answering at this URL instead.")
@click.option("--input", "input_uri", required=True, help="Input: s3://bucket/prefix, file:///path or a folder.")
@click.option("--output-path", required=True, help="Where <input file name>.out go.")
@click.option("--content-type", help="Content-Type of every request.")
@click.option("--accept", help="Accept of every request.")
@click.option("--split-type", type=click.Choice(["None", "Line"]), default="None", show_default=True)
@click.option("--batch-strategy", type=click.Choice(["SingleRecord", "MultiRecord"]),
              help="Default: the server's /execution-parameters, else MultiRecord.")
@click.option("--max-payload", "max_payload_mb", type=click.IntRange(min=0),
              help="MaxPayloadInMB (default: the server's, else 6; 0: no limit).")
@click.option("--max-concurrent", type=click.IntRange(min=1),
              help="MaxConcurrentTransforms (default: the server's, else 1).")
@click.option("--assemble-with", type=click.Choice(["None", "Line"]), default="None", show_default=True)
@click.option("--environment", "environment", multiple=True, metavar="NAME=VALUE",
              help="A variable for the server (repeatable).")
@click.option("--image", help="Run IMAGE serve in a container engine instead of this machine's serve.")
@click.option("--engine", type=click.Choice(["docker", "podman"]), help="Container engine.")
@click.option("--job-name", help="Name of the job's folder under the work folder (default: generated).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where the model is extracted.")
@serving_code_options
def transform_command(model: Optional[str], endpoint_url: Optional[str], input_uri: str, output_path: str,
                      content_type: Optional[str], accept: Optional[str], split_type: str,
                      batch_strategy: Optional[str], max_payload_mb: Optional[int], max_concurrent: Optional[int],
                      assemble_with: str, environment: tuple[str, ...], image: Optional[str],
                      engine: Optional[str], job_name: Optional[str], workdir: Optional[str],
                      source_dir: Optional[str], entry_point: Optional[str], ready_timeout: float) -> None:
    """Run a Batch Transform job: every input file through /invocations, answers in input order.

    Exits 0 when every file was transformed, 1 when a record failed (its file and line are
    named, and that file gets no output), 2 when the job's settings are wrong.
    """
    from toolkit.errors import ConfigError
    from toolkit.local.endpoint import prepare_model, start_server
    from toolkit.local.hosts import ready_engine
    from toolkit.local.storage import Storage, parse_location
    from toolkit.local.transform import TransformSettings, execution_parameters, resolve, run_transform
    from toolkit.testing import free_port

    _setup_logging()
    root = Path(workdir).absolute() if workdir else _default_workdir()
    storage = Storage(os.environ)
    server = None
    settings = TransformSettings(content_type=content_type, accept=accept, split_type=split_type,
                                 assemble_with=assemble_with, batch_strategy=batch_strategy,
                                 max_payload_mb=max_payload_mb, max_concurrent=max_concurrent)
    try:
        if bool(model) == bool(endpoint_url):
            raise ConfigError("give either --model (a server is started for the job) or --endpoint URL")
        env = _environment(environment)
        source = parse_location(input_uri, "--input")
        output = parse_location(output_path, "--output-path")
        items = storage.list(source, "--input")
        if model:
            if image:
                engine = ready_engine(os.environ, engine)
            base = _model_base(root, job_name, "toolkit-local-transform")
            prepare_model(storage, model, base, os.environ)
            env, own = _serving_code(root, base, env, source_dir, entry_point, image)
            server = start_server(base, free_port(), os.environ, {**env, **settings.server_environment()},
                                  image=image, engine=engine, name=base.name, jobenv=own)
            _sigterm_stops_the_job()
            server.wait_ready(ready_timeout)
            endpoint_url = server.url
        elif source_dir or entry_point:
            raise ConfigError("--source-dir/--entry-point go with --model (the code is packed into that model)")
        assert endpoint_url is not None
        settings = resolve(settings, execution_parameters(endpoint_url))
        result = run_transform(storage, endpoint_url, source, items, output, settings)
    except ToolkitError as exc:
        if server is not None:
            server.stop()
        fail("local transform", exc)
    except KeyboardInterrupt:
        if server is not None:
            server.stop()
        sys.exit(130)
    if server is not None:
        server.stop()
    status = "Completed" if result.ok else "Failed"
    click.echo(f"transform: {status}: {result.files} file(s), {result.records} record(s) in {result.requests} "
               f"request(s) ({settings.batch_strategy}, MaxPayloadInMB={settings.max_payload_mb}, "
               f"MaxConcurrentTransforms={settings.max_concurrent}) in {result.seconds:.2f} s", err=True)
    for error in result.errors:
        click.echo(f"  failed: {error}", err=True)
    for uri in result.outputs:
        click.echo(f"  output: {uri}", err=True)
    sys.exit(0 if result.ok else 1)


def _add_process_command() -> None:
    from toolkit.local.processcli import process_command

    local_group.add_command(process_command)


_add_process_command()
