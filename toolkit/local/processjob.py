"""A whole processing job, phase by phase, as the platform runs one.

prepare (config files) -> inputs (File downloads, Pipe FIFOs) -> run (every host at once; Continuous
outputs uploaded as files appear) -> EndOfJob outputs uploaded -> DescribeProcessingJob + summary.
The pieces are the training emulator's: channels, storage, the hosts' supervisor, the syncer.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from toolkit import plan
from toolkit.errors import ConfigError, ToolkitError
from toolkit.local import hosts as hostrun
from toolkit.local import privateml
from toolkit.local.channels import ChannelSource, PipeFeeder
from toolkit.local.jobdir import CONTAINER_BASE, HostDir, resource_config
from toolkit.local.outputs import ACCOUNT, FAILURE_LIMIT, iso
from toolkit.local.procrequest import ProcessingRequest
from toolkit.local.progress import Transferred
from toolkit.local.storage import Storage, parse_location, walk_files
from toolkit.local.sync import SyncedFolder, Syncer
from toolkit.local.trainjob import Ending, JobResult, RunOptions, TrainingJob, check_unique

log = logging.getLogger("toolkit")
CONSOLE_SCRIPTS = ("process", "train", "serve")  # in-process: this machine's, beside this Python


@dataclass
class Uploaded:
    """What one output sent where."""

    uri: str
    mode: str
    files: int = 0
    done: Optional[Transferred] = None


class ExitMessageError(ToolkitError):
    """A host's /opt/ml/output/message is not UTF-8: the platform fails such a job."""


def arn(region: str, job: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:processing-job/{job.lower()}"


def exit_message(hosts: list[HostDir], failed: Optional[str]) -> str:
    """The failed host's message file (else the first host's that has one), its first 1 KB.
    Raises ExitMessageError for a file that is not UTF-8, as the platform fails such a job."""
    for hd in sorted(hosts, key=lambda h: h.host != failed):
        if not hd.message.is_file():
            continue
        data = hd.message.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ExitMessageError(
                f"{hd.host}: /opt/ml/output/message is not UTF-8 (byte {exc.start}): the platform fails a job "
                f"whose message file is not UTF-8; write it as UTF-8") from exc
        if text.strip():
            return data[:FAILURE_LIMIT].decode("utf-8", "ignore").strip()
    return ""


class ProcessingJob(TrainingJob):
    """The training job's runner (hosts, Pipe feeders, syncer, stop) with processing's phases."""

    request: ProcessingRequest  # type: ignore[assignment]
    KIND = "processing job"
    STEPS = (("prepare", "Starting", "Preparing the instances for processing"),
             ("inputs", "Downloading", "Downloading input data"),
             ("run", "InProgress", "Processing in progress"))
    PIPE_READS = "read(s)"

    def __init__(self, request: ProcessingRequest, opts: RunOptions, environ: Mapping[str, str],
                 storage: Storage) -> None:
        super().__init__(request, opts, environ, storage)  # type: ignore[arg-type]
        self.uploaded = {o.name: Uploaded(o.uri, o.upload_mode) for o in request.outputs}
        self.message = ""  # the failed (else first) host's /opt/ml/output/message

    # -- phases -------------------------------------------------------------------------------

    def places(self) -> list[plan.Place]:
        return plan.processing_plan(self.request)  # type: ignore[arg-type]

    def prepare(self) -> None:
        check_unique(self.opts.workdir, self.request)
        self.log_plan()
        config = {**self.request.raw, "ProcessingJobArn": arn(self.region, self.request.job_name)}
        for hd in self.hosts:
            folders = [hd.base / "config", hd.base / "output"]
            folders += [hd.under(i.local_path) for i in self.request.inputs if i.channel.mode == "File"]
            folders += [hd.under(o.local_path) for o in self.request.outputs]
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            rc = resource_config(hd.host, self.request.hosts, self.request.instance_type)
            (hd.base / "config" / "resourceconfig.json").write_text(json.dumps(rc, indent=2) + "\n")
            (hd.base / "config" / "processingjobconfig.json").write_text(json.dumps(config, indent=2) + "\n")

    def fetch_data(self) -> None:
        count = len(self.hosts)
        for pin in self.request.inputs:
            source = ChannelSource(self.storage, pin.channel)
            for i, hd in enumerate(self.hosts):
                items = source.for_host(i, count)
                if pin.channel.mode == "Pipe":
                    dest = hd.under(pin.local_path)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self.feeders.append(PipeFeeder(source, items, dest.parent, hd.host, stem=dest))
                else:
                    self.transfers[f"{hd.host} {pin.name}"] = source.fill(hd.under(pin.local_path), items, hd.host)

    def start_sync(self) -> None:
        folders = [SyncedFolder(hd.under(o.local_path), parse_location(o.uri, f"output {o.name!r}"), o.name)
                   for o in self.request.outputs if o.upload_mode == "Continuous" for hd in self.hosts]
        if folders:
            self.syncer = Syncer(self.storage, folders, self.opts.sync_interval)
            self.syncer.start()

    def job_path(self) -> str:
        """In-process PATH: this toolkit's bin folder first, as the image's venv is (runproc.sh runs
        `python`, and ContainerEntrypoint names `process`)."""
        return os.pathsep.join(p for p in (str(Path(sys.executable).parent), self.environ.get("PATH")) if p)

    def command(self, hd: HostDir) -> list[str]:
        """In-process: ContainerEntrypoint + ContainerArguments, this machine's console scripts for
        ``process``/``train``/``serve``; a first word that is not here is the request's fault."""
        argv = [*self.request.entrypoint, *self.request.arguments]
        first = argv[0]
        if first in CONSOLE_SCRIPTS:
            argv[0] = hostrun.console_script(first, self.environ)
        elif first.startswith(CONTAINER_BASE + "/"):
            if not hd.under(first).exists():
                raise ConfigError(f"ContainerEntrypoint {first!r} is not in the job's /opt/ml (no input puts it "
                                  f"there)")
        elif shutil.which(first, path=self.job_path()) is None:
            raise ConfigError(f"ContainerEntrypoint {first!r} is not on this machine's PATH; install it, or give "
                              f"--image to run the job in an image that has it")
        return argv

    def check_image(self, engine: str) -> None:
        """The entrypoint's first word must be in the image (or come in with an input)."""
        first = [*self.request.entrypoint, *self.request.arguments][0]
        if first.startswith(CONTAINER_BASE + "/") and self.hosts[0].under(first).exists():
            return
        probe = subprocess.run([engine, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh",
                                str(self.request.image), "-c", 'command -v "$1"', "sh", first],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            raise ConfigError(f"ContainerEntrypoint {first!r} is not in the image {self.request.image} "
                              f"(command -v finds nothing); check the entrypoint or the image")

    def host_processes(self, network: Optional[hostrun.Network]) -> list[hostrun.HostProcess]:
        env = {**self.request.environment, "PROCESSING_JOB_NAME": self.request.job_name}
        if network is None:
            unshare = privateml.check(self.environ)
            path = self.job_path()
            return [hostrun.HostProcess(hd.host, privateml.wrap(unshare, hd.base, self.job_dir / f".{hd.host}-opt",
                                                                self.command(hd)),
                                        env=hostrun.host_environment(self.environ, {**env, "PATH": path}),
                                        cwd=hd.base)
                    for hd in self.hosts]
        aws = {k: v for k, v in self.environ.items() if k.startswith("AWS_")}
        return [hostrun.in_container(network.engine, str(self.request.image), hd.host,
                                     f"{self.request.job_name}-{hd.host}", network, self.request.hosts,
                                     [(hd.base, CONTAINER_BASE, False)], {**aws, **env}, self.request.entrypoint,
                                     self.request.arguments, self.opts.kill_after, inherited=self.environ)
                for hd in self.hosts]

    def stop_background(self) -> Optional[str]:
        error = super().stop_background()
        if self.syncer:
            for name, count in self.syncer.uploaded.items():
                self.uploaded[name].files += count
        return error

    def upload_outputs(self) -> None:
        """EndOfJob outputs: every host's files, key for key under the output's S3Uri."""
        for out in self.request.outputs:
            if out.upload_mode != "EndOfJob":
                continue
            dest = parse_location(out.uri, f"output {out.name!r}")
            files = [(path, dest.join(*name.split("/"))) for hd in self.hosts
                     for name, path in walk_files(hd.under(out.local_path))]
            self.uploaded[out.name].done = self.storage.upload_files(files, f"output {out.name}")
            self.uploaded[out.name].files += len(files)

    # -- the whole job ------------------------------------------------------------------------

    def timeout_reason(self) -> str:
        return f"MaxRuntimeInSeconds ({self.request.max_runtime} s) exceeded"

    def algorithm_error(self, first: hostrun.HostExit) -> str:
        return "See job logs for more information"

    def conclude(self, ending: Ending, sync_error: Optional[str]) -> Ending:
        """The hosts' exit message; EndOfJob outputs uploaded when the job completed."""
        first = self.result.first_failure if self.result else None
        self.message = exit_message(self.hosts, first.host if first else None)
        if ending.status != "Completed":
            return ending
        if sync_error:
            return Ending("Failed", 2, f"ClientError: {sync_error}")
        self.timeline.begin("upload", "Uploading", "Uploading processing outputs")
        self.upload_outputs()
        return ending

    def release(self) -> None:
        """Nothing to give back: processing inputs are plain folders."""

    def describe_job(self, ending: Ending, created: float) -> dict[str, Any]:
        """A DescribeProcessingJob response for the finished job (times as ISO 8601 strings)."""
        raw = dict(self.request.raw)
        ended = time.time()
        answer: dict[str, Any] = {
            "ProcessingJobName": self.request.job_name,
            "ProcessingJobArn": arn(self.region, self.request.job_name),
            "ProcessingJobStatus": ending.status,
            "ProcessingInputs": raw.get("ProcessingInputs", []),
            "ProcessingOutputConfig": raw.get("ProcessingOutputConfig", {"Outputs": []}),
            "ProcessingResources": raw.get("ProcessingResources", {}),
            "StoppingCondition": raw.get("StoppingCondition", {}),
            "AppSpecification": raw.get("AppSpecification", {}),
            "Environment": dict(self.request.environment),
            "CreationTime": iso(created),
            "ProcessingStartTime": iso(self.started),
            "ProcessingEndTime": iso(ended),
            "LastModifiedTime": iso(ended),
        }
        if raw.get("RoleArn"):
            answer["RoleArn"] = raw["RoleArn"]
        if self.message:
            answer["ExitMessage"] = self.message
        if ending.failure:
            answer["FailureReason"] = ending.failure[:FAILURE_LIMIT]
        return answer

    def results(self, job: JobResult) -> list[str]:
        lines = [f"  ExitMessage: {self.message.splitlines()[0]}"] if self.message else []
        for name, up in self.uploaded.items():
            if up.files or up.mode == "Continuous":
                lines.append(f"  output {name} ({up.mode}): {up.files} file(s) to {up.uri}")
            else:
                lines.append(f"  output {name} ({up.mode}): not uploaded (the job did not complete)"
                             if job.status != "Completed" else f"  output {name} ({up.mode}): nothing to upload")
        lines.append(f"  job folder: {self.job_dir}")
        return lines


def run_processing_job(request: ProcessingRequest, opts: RunOptions, environ: Mapping[str, str],
                       storage: Storage) -> JobResult:
    return ProcessingJob(request, opts, environ, storage).run()

