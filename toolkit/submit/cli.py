"""``toolkit submit train|process|transform``, ``toolkit logs`` and ``toolkit describe``.

Each submit command takes its ``toolkit local`` counterpart's options (copied from that command,
so the two cannot drift) minus what only a local run has, plus what the service needs. Errors the
user can fix print one line (``toolkit submit train: <what and how>``) and exit 2.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from toolkit.cli import fail
from toolkit.errors import ToolkitError

LOCAL_ONLY = {"kill_after", "engine", "in_process", "workdir", "endpoint_url"}


def _copied_params(command: click.Command, helps: dict[str, str], optional: tuple[str, ...] = ()) -> list[Any]:
    """The local command's parameters, without the local-only ones, some with a help for the service."""
    params = []
    for param in command.params:
        if param.name in LOCAL_ONLY:
            continue
        if param.name in helps or param.name in optional:
            param = copy.copy(param)
            if param.name in helps:
                param.help = helps[param.name]  # type: ignore[attr-defined]
            if param.name in optional:
                param.required = False
        params.append(param)
    return params


def _service_options(fn: Callable) -> Callable:
    for option in reversed([
        click.option("--role", help="RoleArn: the IAM role the job runs as (or the request's RoleArn)."),
        click.option("--bucket", help="Bucket for uploads and default outputs (default: the SDK's "
                     "sagemaker-<region>-<account id>, created when missing)."),
        click.option("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)."),
        click.option("--volume-size", type=click.IntRange(min=1), default=30, show_default=True,
                     help="VolumeSizeInGB of each instance."),
        click.option("--dry-run", is_flag=True, help="Print the request (stdout) and the plan; send nothing."),
        click.option("--wait", is_flag=True, help="Follow the job and its logs until it ends; exit 0 when it "
                     "completed, else 1."),
        click.option("--download", "download_dir", type=click.Path(file_okay=False),
                     help="When the job ends, fetch its model and outputs into this folder (implies --wait)."),
    ]):
        fn = option(fn)
    return fn


def _echo(line: str) -> None:
    click.echo(line, err=True)


def _submit(command: str, kw: dict[str, Any], build: Callable[[Any, Any], Any]) -> None:
    """Resolve the account, build the submission (validated, nothing sent), print the plan, send, follow."""
    from toolkit.plan import format_plan
    from toolkit.submit.account import Account
    from toolkit.submit.send import resolve_target, send

    try:
        account = Account.from_environ(os.environ, kw["region"])
        target = resolve_target(account, kw["bucket"], kw["role"], kw["volume_size"])
        submission = build(account, target)
    except ToolkitError as exc:
        fail(command, exc)
    kind, job = submission.kind, submission.job_name
    _echo(f"{kind.api} {job} ({account.region}): where its files are")
    for line in format_plan(submission.places):
        _echo(line)
    for upload in submission.uploads:
        _echo(f"  upload     {upload.src} -> {upload.dest}")
    if submission.source is not None and submission.source.uploaded:
        _echo(f"  upload     {submission.source.folder or submission.source.entry_point} (as sourcedir.tar.gz) -> "
              f"{submission.source.submit_uri}")
    if kw["dry_run"]:
        if submission.model_request is not None:
            click.echo(json.dumps(submission.model_request, indent=2, sort_keys=True))
        click.echo(json.dumps(submission.request, indent=2, sort_keys=True))
        _echo("dry run: nothing was uploaded or sent")
        return
    try:
        answer = send(account, submission, target)
    except ToolkitError as exc:
        fail(command, exc)
    _echo(f"created {answer.get(kind.api + 'Arn', job)}")
    if not (kw["wait"] or kw["download_dir"]):
        _echo(f"follow it: toolkit logs {job} --wait")
        return
    _wait(command, account, kind, job, kw["download_dir"])


def _wait(command: str, account: Any, kind: Any, job: str, download_dir: Optional[str], logs: bool = True) -> None:
    """Follow the job; Ctrl-C asks whether to stop it. Exits 0 (Completed), 1 (Failed, Stopped), 130."""
    from toolkit.submit.follow import download, failure_line, follow

    try:
        answer = follow(account, kind, job, _echo, logs=logs, poll_seconds=_poll_seconds())
    except ToolkitError as exc:
        fail(command, exc)
    except KeyboardInterrupt:
        _interrupted(command, account, kind, job)
    status = answer.get(kind.status_field)
    if download_dir:
        try:
            download(account, kind, answer, Path(download_dir), _echo)
        except ToolkitError as exc:
            fail(command, exc)
    if status == "Completed":
        sys.exit(0)
    reason = failure_line(answer)
    _echo(f"{kind.api} {job}: {status}" + (f": {reason}" if reason else ""))
    sys.exit(1)


def _poll_seconds() -> float:
    """TOOLKIT_SUBMIT_POLL_SECONDS: how often --wait reads the job's status and logs (the SDK's 5 s)."""
    from toolkit import settings

    return float(settings.read(os.environ, "TOOLKIT_SUBMIT_POLL_SECONDS"))


def _interrupted(command: str, account: Any, kind: Any, job: str) -> None:
    _echo("")
    try:
        stop = click.confirm(f"Stop {kind.api} {job} on SageMaker?", default=False, err=True)
    except click.Abort:
        stop = False
    if stop:
        try:
            account.call("sagemaker", kind.operation("stop"), **{kind.name_field: job})
        except ToolkitError as exc:
            fail(command, exc)
        _echo(f"stopping {job}; see it end: toolkit logs {job} --wait")
    else:
        _echo(f"{job} goes on running on SageMaker; follow it again: toolkit logs {job} --wait")
    sys.exit(130)


@click.group(name="submit")
def submit_group() -> None:
    """Run a job on SageMaker: the same options and request JSON as `toolkit local`, plus the role,
    image and instance type; the code is uploaded as the SDK v2 uploads it."""


def _train_command() -> click.Command:
    from toolkit.local.cli import train_command

    params = _copied_params(train_command, {
        "image": "TrainingImage: the image URI in ECR (or the request's).",
        "instance_type": "ResourceConfig.InstanceType, e.g. ml.m5.large.",
        "output_path": "S3OutputPath (default: s3://<bucket>/).",
        "code_location": "Where sourcedir.tar.gz goes (default: the output bucket's root).",
        "channels": "An input channel: NAME=s3://bucket/prefix (repeatable).",
    })

    @_service_options
    def train(**kw: Any) -> None:
        """Submit a training job: the source uploaded as sourcedir.tar.gz, then CreateTrainingJob."""
        from toolkit.local.request import Overrides, load_request_file
        from toolkit.submit.training import training_submission

        def build(account: Any, target: Any) -> Any:
            data = load_request_file(kw["request_file"], sys.stdin.read() if kw["request_file"] == "-" else None) \
                if kw["request_file"] else {}
            overrides = Overrides(
                job_name=kw["job_name"], base_job_name=kw["base_job_name"], image=kw["image"],
                channels=kw["channels"], input_mode=kw["input_mode"], distribution=kw["distribution"],
                hyperparameters=kw["hyperparameters"], environment=kw["environment"], output_path=kw["output_path"],
                instance_count=kw["instance_count"], instance_type=kw["instance_type"],
                checkpoint_uri=kw["checkpoint_s3_uri"], checkpoint_local_path=kw["checkpoint_local_path"],
                max_run=kw["max_run"])
            return training_submission(data, overrides, target, entry_point=kw["entry_point"],
                                       source_dir=kw["source_dir"], code_location=kw["code_location"],
                                       log_level=kw["container_log_level"])

        _submit("submit train", kw, build)

    command = click.command("train")(train)
    command.params = params + command.params
    return command


def _process_command() -> click.Command:
    from toolkit.local.processcli import process_command

    params = _copied_params(process_command, {
        "image": "AppSpecification.ImageUri: the image URI in ECR (or the request's).",
        "instance_type": "ClusterConfig.InstanceType, e.g. ml.m5.large.",
        "inputs": "An input at /opt/ml/processing/input/NAME: s3://bucket/prefix, or a file or folder here "
                  "(uploaded to s3://<bucket>/<job>/input/NAME).",
        "outputs": "An output from /opt/ml/processing/output/NAME (default URI: s3://<bucket>/<job>/output/NAME).",
        "output_path": "Where outputs without a URI go (default: s3://<bucket>).",
    })

    @_service_options
    def process(**kw: Any) -> None:
        """Submit a processing job: local inputs and --code uploaded as the SDK does, then CreateProcessingJob.

        COMMAND (after `--`) is the ContainerEntrypoint; with --code FILE, the script's arguments.
        """
        from toolkit.local.processcli import code_overrides
        from toolkit.local.procrequest import ProcessOverrides
        from toolkit.local.request import load_request_file
        from toolkit.submit.processing import processing_submission

        def build(account: Any, target: Any) -> Any:
            data = (load_request_file(kw["request_file"], sys.stdin.read() if kw["request_file"] == "-" else None,
                                      api="CreateProcessingJob") if kw["request_file"] else {})
            overrides = ProcessOverrides(
                job_name=kw["job_name"], base_job_name=kw["base_job_name"], image=kw["image"], inputs=kw["inputs"],
                input_mode=kw["input_mode"], distribution=kw["distribution"], outputs=kw["outputs"],
                output_mode=kw["output_mode"], environment=kw["environment"], instance_count=kw["instance_count"],
                instance_type=kw["instance_type"], max_run=kw["max_run"],
                **code_overrides(kw["code"], kw["code_command"], kw["command"]))
            return processing_submission(data, overrides, target, kw["output_path"])

        _submit("submit process", kw, build)

    command = click.command("process", context_settings={"allow_interspersed_args": False})(process)
    command.params = params[:-1] + command.params + params[-1:]  # COMMAND stays last
    return command


def _transform_command() -> click.Command:
    from toolkit.local.cli import transform_command

    params = _copied_params(transform_command, {
        "model": "A SageMaker model name, or s3://.../model.tar.gz (with --image: a model is created first).",
        "image": "With --model s3://...: the serving image URI in ECR.",
        "input_uri": "Input: the S3 prefix of the files to transform.",
        "output_path": "Where <input file name>.out go (default: s3://<bucket>/<job>).",
        "job_name": "TransformJobName (default: base name + timestamp, as the SDK makes it).",
    }, optional=("input_uri", "output_path"))

    @_service_options
    @click.option("--request", "request_file", metavar="FILE",
                  help="A CreateTransformJob request as JSON ('-' reads stdin); options override its fields.")
    @click.option("--base-job-name", help="Base of the generated job name (default: the model image's name).")
    @click.option("--instance-count", type=click.IntRange(min=1), help="TransformResources.InstanceCount (1).")
    @click.option("--instance-type", help="TransformResources.InstanceType, e.g. ml.m5.large.")
    def transform(**kw: Any) -> None:
        """Submit a batch transform job (CreateModel first for a model.tar.gz), then CreateTransformJob."""
        from toolkit.local.request import load_request_file
        from toolkit.local.transform import TransformSettings
        from toolkit.submit.transform import TransformOptions, transform_submission

        def build(account: Any, target: Any) -> Any:
            data = (load_request_file(kw["request_file"], sys.stdin.read() if kw["request_file"] == "-" else None,
                                      api="CreateTransformJob") if kw["request_file"] else {})
            settings = TransformSettings(**{k: kw[k] for k in TransformSettings.__dataclass_fields__})
            opts = TransformOptions(settings, **{k: kw[k] for k in TransformOptions.__dataclass_fields__
                                                 if k != "settings"})
            return transform_submission(data, opts, target, account)

        _submit("submit transform", kw, build)

    command = click.command("transform")(transform)
    command.params = params + command.params
    return command


submit_group.add_command(_train_command())
submit_group.add_command(_process_command())
submit_group.add_command(_transform_command())


@click.command("logs")
@click.argument("job")
@click.option("--wait", is_flag=True, help="Keep following until the job ends (exit 0 when it completed, else 1).")
@click.option("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's).")
def logs_command(job: str, wait: bool, region: Optional[str]) -> None:
    """Print the CloudWatch logs of a training, processing or transform job, each line with its host."""
    from toolkit.submit.account import Account
    from toolkit.submit.follow import LogTail, find

    try:
        account = Account.from_environ(os.environ, region)
        kind, _ = find(account, job)
        if not wait:
            LogTail(account, kind, job, _echo).poll()
            return
    except ToolkitError as exc:
        fail("logs", exc)
    _wait("logs", account, kind, job, None)


@click.command("describe")
@click.argument("job")
@click.option("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's).")
def describe_command(job: str, region: Optional[str]) -> None:
    """Print the Describe*Job answer of a training, processing or transform job as JSON."""
    from toolkit.submit.account import Account
    from toolkit.submit.follow import find

    try:
        _, answer = find(Account.from_environ(os.environ, region), job)
    except ToolkitError as exc:
        fail("describe", exc)
    answer.pop("ResponseMetadata", None)
    click.echo(json.dumps(answer, indent=2, sort_keys=True, default=str))
