"""``toolkit local process``: a CreateProcessingJob request (JSON and/or options) run on this machine."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import click


def code_overrides(code: Optional[str], code_command: str, command: tuple[str, ...]) -> dict[str, Any]:
    """ProcessOverrides' command, code and arguments: with --code, COMMAND holds the script's arguments."""
    if not code:
        return {"command": command}
    return {"command": shlex.split(code_command), "code": code, "arguments": command}


@click.command("process", context_settings={"allow_interspersed_args": False})
@click.option("--request", "request_file", metavar="FILE",
              help="A CreateProcessingJob request as JSON ('-' reads stdin); options below override its fields.")
@click.option("--job-name", help="ProcessingJobName (default: base name + timestamp, as the SDK makes it).")
@click.option("--base-job-name", help="Base of the generated job name (default: the image's name).")
@click.option("--image", help="Run the job in IMAGE with a container engine (one container per host).")
@click.option("--in-process", is_flag=True, help="Ignore the request's ImageUri: run the command on this machine, "
              "each host with its own /opt/ml in a private mount namespace.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=URI",
              help="An input at /opt/ml/processing/input/NAME: s3://bucket/prefix, file:///path or a folder.")
@click.option("--input-mode", type=click.Choice(["File", "Pipe"]), help="S3InputMode of the --input inputs.")
@click.option("--distribution", type=click.Choice(["FullyReplicated", "ShardedByS3Key"]),
              help="S3DataDistributionType of the --input inputs.")
@click.option("--output", "outputs", multiple=True, metavar="NAME[=URI]",
              help="An output from /opt/ml/processing/output/NAME (default URI: <output path>/<job>/output/NAME).")
@click.option("--output-mode", type=click.Choice(["EndOfJob", "Continuous"]), help="S3UploadMode of the --output "
              "outputs.")
@click.option("--output-path", help="Where outputs without a URI go (default: the work folder).")
@click.option("--environment", "environment", multiple=True, metavar="NAME=VALUE",
              help="A variable of the job's Environment (repeatable).")
@click.option("--instance-count", type=click.IntRange(min=1), help="Number of hosts (algo-1..algo-N).")
@click.option("--instance-type", help="Shown to the job as its instance type (default: local).")
@click.option("--max-run", type=click.IntRange(min=1), help="StoppingCondition.MaxRuntimeInSeconds.")
@click.option("--kill-after", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds between SIGTERM and SIGKILL when the job is stopped.")
@click.option("--engine", type=click.Choice(["docker", "podman"]), help="Container engine (default: docker, else "
              "podman).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where job folders go (default: "
              "$TOOLKIT_LOCAL_DIR or <tmp>/toolkit-local).")
@click.option("--code", metavar="FILE", help="As a ScriptProcessor: this script is the input `code` and the job runs "
              "`--command` /opt/ml/processing/input/code/FILE; then COMMAND is the ContainerArguments.")
@click.option("--command", "code_command", default="process", show_default=True,
              help="With --code: the command that runs the script (ScriptProcessor's command).")
@click.argument("command", nargs=-1)
def process_command(request_file: Optional[str], job_name: Optional[str], base_job_name: Optional[str],
                    image: Optional[str], in_process: bool, inputs: tuple[str, ...], input_mode: Optional[str],
                    distribution: Optional[str], outputs: tuple[str, ...], output_mode: Optional[str],
                    output_path: Optional[str], environment: tuple[str, ...], instance_count: Optional[int],
                    instance_type: Optional[str], max_run: Optional[int], kill_after: float, engine: Optional[str],
                    workdir: Optional[str], code: Optional[str], code_command: str, command: tuple[str, ...]) -> None:
    """Run a processing job here: inputs in, COMMAND on every host, outputs out, as the platform does.

    COMMAND (after the options, e.g. `-- process prep.py --alpha 1`) is the ContainerEntrypoint; with
    --code FILE it is the script's arguments (`--code prep.py -- --alpha 1`), as a ScriptProcessor runs it.
    Exits with the job's exit code (the first failed host's), or 2 when the request is wrong.
    """
    from toolkit.cli import fail
    from toolkit.errors import ConfigError, ToolkitError
    from toolkit.local.cli import _default_workdir, _setup_logging, _sigterm_stops_the_job, _sync_interval
    from toolkit.local.processjob import run_processing_job
    from toolkit.local.procrequest import ProcessOverrides, apply_process_overrides, parse_processing_request
    from toolkit.local.request import load_request_file
    from toolkit.local.storage import Storage
    from toolkit.local.trainjob import RunOptions, check_unique

    _setup_logging()
    root = Path(workdir).absolute() if workdir else _default_workdir()
    storage = Storage(os.environ)
    try:
        data = (load_request_file(request_file, sys.stdin.read() if request_file == "-" else None,
                                  api="CreateProcessingJob") if request_file else {})
        overrides = ProcessOverrides(
            job_name=job_name, base_job_name=base_job_name, image=image, inputs=inputs, input_mode=input_mode,
            distribution=distribution, outputs=outputs, output_mode=output_mode, environment=environment,
            instance_count=instance_count, instance_type=instance_type, max_run=max_run,
            **code_overrides(code, code_command, command))
        request = parse_processing_request(apply_process_overrides(data, overrides, output_path or str(root)))
        if in_process:
            if image:
                raise ConfigError("--in-process and --image contradict each other; give one of them")
            request = dataclasses.replace(request, image=None)
        check_unique(root, request)
        sync_interval = _sync_interval()
    except ToolkitError as exc:
        fail("local process", exc)
    _sigterm_stops_the_job()
    options = RunOptions(workdir=root, engine=engine, kill_after=kill_after, sync_interval=sync_interval)
    result = run_processing_job(request, options, os.environ, storage)
    for line in result.summary:
        click.echo(line, err=True)
    sys.exit(result.exit_code)
