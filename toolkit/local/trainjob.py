"""A whole training job, phase by phase, as the platform runs it.

prepare (config files) -> data (channels, checkpoints) -> run (every host at once, with
checkpoints and intermediate output synced) -> upload (model, output) -> describe + summary.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from toolkit import plan, settings
from toolkit.builtin import sdkv3
from toolkit.errors import ConfigError, ToolkitError
from toolkit.local import hosts as hostrun
from toolkit.local import jobenv
from toolkit.local.channels import ChannelSource, PipeFeeder, copy_channel, make_writable
from toolkit.local.clean import describe_size
from toolkit.local.jobdir import CONTAINER_BASE, HostDir, lay_out
from toolkit.local.jobenv import JobEnv
from toolkit.local.outputs import Artifacts, describe, failure_reason, iso, upload_artifacts
from toolkit.local.progress import Transferred
from toolkit.local.request import TrainingRequest
from toolkit.local.storage import Storage, parse_location
from toolkit.local.sync import DEFAULT_INTERVAL, SyncedFolder, Syncer

log = logging.getLogger("toolkit")
# Where CheckpointConfig.LocalPath really is for this host: in-process, /opt/ml/checkpoints is
# <host folder>/checkpoints, so a script that reads this variable (default: the usual path) works
# in both modes. (The SDK's own local mode refuses checkpoint settings instead.)
CHECKPOINT_VARIABLE = "TOOLKIT_CHECKPOINT_DIR"


@dataclass
class RunOptions:
    """How to run, beyond what the request says."""

    workdir: Path
    engine: Optional[str] = None
    kill_after: float = hostrun.KILL_AFTER
    sync_interval: float = DEFAULT_INTERVAL
    source: Optional[Path] = None  # --source-dir (or the lone --entry-point) on this machine, when given


@dataclass
class Ending:
    """How a job ended: the status DescribeXJob reports (training's SecondaryStatus too, when it
    says more), the exit code and the failure reason."""

    status: str
    exit_code: int = 0
    failure: str = ""
    secondary: str = ""  # "": the same as status


@dataclass
class JobResult:
    exit_code: int
    status: str
    describe: dict[str, Any]
    describe_path: Path
    job_dir: Path
    summary: list[str] = field(default_factory=list)


class _Timeline:
    """Phase durations and the SecondaryStatusTransitions the platform reports."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self.transitions: list[dict[str, Any]] = []
        self._phase: Optional[tuple[str, float, float]] = None

    def begin(self, key: str, status: str, message: str) -> None:
        self.end()
        self._phase = (key, time.perf_counter(), time.time())
        self.transitions.append({"Status": status, "StartTime": iso(time.time()), "StatusMessage": message})

    def end(self) -> None:
        if self._phase is not None:
            key, perf, _ = self._phase
            self.durations[key] = self.durations.get(key, 0.0) + time.perf_counter() - perf
            self.transitions[-1]["EndTime"] = iso(time.time())
            self._phase = None


def check_unique(workdir: Path, request: TrainingRequest) -> None:
    """Job names are unique, as on the platform: a job that already ran here keeps its folders.
    The message says how to run it again: under a new name, or after removing the old job."""
    used = [p for p in [workdir / f"{request.job_name}.json", *(workdir / request.job_name / h for h in request.hosts)]
            if p.exists()]
    if used:
        status = _status_of(workdir / f"{request.job_name}.json")
        raise ConfigError(f"a job named {request.job_name!r} already ran here{status}; job names are unique: "
                          f"to run it again give a new --job-name (or none, for a generated one), or remove the "
                          f"old one with `toolkit local clean --workdir {workdir} {request.job_name}`")


def _status_of(describe_path: Path) -> str:
    try:
        return f" ({json.loads(describe_path.read_text())['TrainingJobStatus']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def region_of(environ: Mapping[str, str]) -> str:
    return settings.region(environ) or "us-east-1"


def _job_env(request: TrainingRequest, region: str) -> dict[str, str]:
    arn = f"arn:aws:sagemaker:{region}:000000000000:training-job/{request.job_name.lower()}"
    return {**request.environment, "TRAINING_JOB_NAME": request.job_name, "TRAINING_JOB_ARN": arn}


def _command(request: TrainingRequest, environ: Mapping[str, str], env: Optional[JobEnv] = None) -> list[str]:
    """In-process: ContainerEntrypoint + ContainerArguments when given, else ``train`` (the job
    environment's, else this machine's).

    The SDK v3's driver entrypoint (every ModelTrainer job with SourceCode) runs scripts that exist
    only at the container's /opt/ml: ``train`` runs such a job instead, from the same
    sourcecode.json and distributed.json (docs/fetching.md)."""
    train = env.script("train") if env else hostrun.console_script("train", environ)
    if request.entrypoint and sdkv3.runs_sdk_driver(request.entrypoint, request.arguments):
        log.info("the request runs the SageMaker SDK v3 driver (%s): in-process, train runs the job", sdkv3.DRIVER)
        return [train]
    if request.entrypoint:
        return [*request.entrypoint, *request.arguments]
    if request.arguments:
        return list(request.arguments)
    return [train]


def _local_submit_dir(request: TrainingRequest) -> Optional[Path]:
    """A source archive on this machine, which a container sees at the same path."""
    value = request.hyperparameters.get("sagemaker_submit_directory", "")
    value = value.strip('"')
    if not value or ("://" in value and not value.startswith("file://")):
        return None  # s3://, git+https://, https://: the container fetches it
    loc = parse_location(value, "sagemaker_submit_directory")
    return loc.path


class TrainingJob:
    """A training job run phase by phase; a processing job is one with other phases (processjob.py)."""

    KIND = "job"  # how the summary names it
    STEPS = (("prepare", "Starting", "Preparing the instances for training"),
             ("data", "Downloading", "Downloading input data"),
             ("run", "Training", "Training image download completed. Training in progress."))
    PIPE_READS = "epoch(s)"  # what one pass of a Pipe channel is called in the summary

    def __init__(self, request: TrainingRequest, opts: RunOptions, environ: Mapping[str, str],
                 storage: Storage) -> None:
        self.request = request
        self.opts = opts
        self.environ = environ
        self.storage = storage
        self.region = region_of(environ)
        self.job_dir = opts.workdir / request.job_name
        self.container = bool(request.image)
        self.hosts = [HostDir(h, self.job_dir / h) for h in request.hosts]
        self.timeline = _Timeline()
        self.feeders: list[PipeFeeder] = []
        self.transfers: dict[str, Transferred] = {}
        self.syncer: Optional[Syncer] = None
        self.engine: Optional[str] = None
        self.jobenv: Optional[JobEnv] = None
        self.result: Optional[hostrun.RunResult] = None
        self.started = 0.0  # when the hosts started
        self.artifacts = Artifacts()

    # -- phases -------------------------------------------------------------------------------

    def checkpoint_dir(self, hd: HostDir) -> Path:
        return hd.checkpoints(self.request.checkpoint_local_path, self.container)

    def places(self) -> list[plan.Place]:
        return plan.training_plan(self.request)

    def log_plan(self) -> None:
        """Where the job's files are, as ``toolkit submit`` prints it before sending the same job."""
        log.info("%s: where its files are", self.request.job_name)
        for line in plan.format_plan(self.places()):
            log.info("%s", line)

    def prepare(self) -> None:
        check_unique(self.opts.workdir, self.request)
        if self.container:  # before any data is copied: a stopped daemon is not the image's fault
            self.engine = hostrun.ready_engine(self.environ, self.opts.engine)
        self.log_plan()
        for hd in self.hosts:
            shown = self.request.checkpoint_local_path if self.container else str(self.checkpoint_dir(hd))
            lay_out(hd, self.request, shown if self.request.checkpoint_uri else None)
        if not self.container:
            for hd in self.hosts:  # the folder TOOLKIT_CHECKPOINT_DIR names is there, as /opt/ml/checkpoints is
                if hd.base in self.checkpoint_dir(hd).parents:
                    self.checkpoint_dir(hd).mkdir(parents=True, exist_ok=True)
            self.jobenv = jobenv.prepare(self.opts.workdir, self.job_dir, self.requirements(), self.environ)

    def requirements(self) -> Optional[str]:
        """The job's requirements, read before it starts to pick its environment (None: the job
        fetches its code from somewhere this machine cannot read first: git, https)."""
        named = settings.read(self.request.environment, "TOOLKIT_REQUIREMENTS")
        source = self.opts.source or _local_submit_dir(self.request)
        if source is not None:
            return jobenv.requirements_text(source, named)
        value = self.request.hyperparameters.get("sagemaker_submit_directory", "").strip('"')
        if value.startswith("s3://") and value.endswith((".tar.gz", ".tgz")):
            with tempfile.TemporaryDirectory(prefix="toolkit-local-") as scratch:
                archive = self.storage.download_file(parse_location(value, "sagemaker_submit_directory"),
                                                     Path(scratch) / "sourcedir.tar.gz")
                return jobenv.requirements_text(archive, named)
        return None

    def fetch_data(self) -> None:
        count = len(self.hosts)
        for channel in self.request.channels:
            source = ChannelSource(self.storage, channel)
            if channel.mode == "Pipe":
                for i, hd in enumerate(self.hosts):
                    self.feeders.append(PipeFeeder(source, source.for_host(i, count), hd.data, hd.host))
                continue
            replicated = channel.distribution == "FullyReplicated"
            for i, hd in enumerate(self.hosts):
                dest = hd.data / channel.name
                if replicated and i > 0:
                    copy_channel(self.hosts[0].data / channel.name, dest, channel.mode == "FastFile")
                    continue
                self.transfers[f"{hd.host} {channel.name}"] = source.fill(dest, source.for_host(i, count), hd.host)
        if self.request.checkpoint_uri:
            loc = parse_location(self.request.checkpoint_uri, "CheckpointConfig.S3Uri")
            items = self.storage.list(loc, "CheckpointConfig.S3Uri", allow_empty=True)
            for hd in self.hosts:
                dest = self.checkpoint_dir(hd)
                dest.mkdir(parents=True, exist_ok=True)
                if items:
                    self.transfers[f"{hd.host} checkpoints"] = self.storage.download(
                        loc, items, dest, f"{hd.host} checkpoints")

    def start_sync(self) -> None:
        folders = []
        if self.request.checkpoint_uri:
            loc = parse_location(self.request.checkpoint_uri, "CheckpointConfig.S3Uri")
            folders += [SyncedFolder(self.checkpoint_dir(hd), loc, "checkpoints") for hd in self.hosts]
        s3_output = self.request.hyperparameters.get("sagemaker_s3_output")
        if s3_output:
            loc = plan.intermediate_output(s3_output.strip('"'), self.request.job_name)
            folders += [SyncedFolder(hd.intermediate, loc, "intermediate") for hd in self.hosts]
        if folders:
            self.syncer = Syncer(self.storage, folders, self.opts.sync_interval)
            self.syncer.start()

    def host_processes(self, network: Optional[hostrun.Network]) -> list[hostrun.HostProcess]:
        env = _job_env(self.request, self.region)
        if network is None:
            command = _command(self.request, self.environ, self.jobenv)
            if self.jobenv is not None:
                env = {**env, **self.jobenv.variables(self.environ)}
            return [hostrun.in_process(hd.host, hd.base, command, self.environ,
                                       {**env, CHECKPOINT_VARIABLE: str(self.checkpoint_dir(hd))})
                    for hd in self.hosts]
        aws = {k: v for k, v in self.environ.items() if k.startswith("AWS_")}
        processes = []
        for hd in self.hosts:
            mounts: list[tuple[Path, str, bool]] = [(hd.base, CONTAINER_BASE, False)]
            mounts += [(hd.data / c.name, f"{CONTAINER_BASE}/input/data/{c.name}", True)
                       for c in self.request.channels if c.mode == "FastFile"]
            local_path = self.request.checkpoint_local_path
            if self.request.checkpoint_uri and not local_path.startswith(CONTAINER_BASE + "/"):
                mounts.append((self.checkpoint_dir(hd), local_path, False))
            submit = _local_submit_dir(self.request)
            if submit is not None:
                folder = submit if submit.is_dir() else submit.parent
                mounts.append((folder, str(folder), True))
            processes.append(hostrun.in_container(
                network.engine, str(self.request.image), hd.host, f"{self.request.job_name}-{hd.host}", network,
                self.request.hosts, mounts, {**aws, **env, CHECKPOINT_VARIABLE: local_path}, self.request.entrypoint,
                self.request.arguments, self.opts.kill_after, inherited=self.environ))
        return processes

    def run_hosts(self) -> hostrun.RunResult:
        if not self.container:
            processes = self.host_processes(None)
            for feeder in self.feeders:
                feeder.start()
            return hostrun.run_hosts(processes, self.request.max_runtime, self.opts.kill_after)
        engine = self.engine or hostrun.ready_engine(self.environ, self.opts.engine)
        hostrun.ensure_image(engine, str(self.request.image))
        self.check_image(engine)
        with hostrun.Network(engine, f"toolkit-{self.request.job_name}") as network:
            processes = self.host_processes(network)
            for feeder in self.feeders:
                feeder.start()
            return hostrun.run_hosts(processes, self.request.max_runtime, self.opts.kill_after)

    def check_image(self, engine: str) -> None:
        """Called once the image is here, before any host starts (a processing job checks its entrypoint)."""

    def stop_background(self) -> Optional[str]:
        for feeder in self.feeders:
            feeder.stop()
        for feeder in self.feeders:
            if feeder.ident is not None:
                feeder.join(timeout=2)
        return self.syncer.finish() if self.syncer else None

    # -- the whole job ------------------------------------------------------------------------

    def run(self) -> JobResult:
        """Every phase, then the DescribeXJob answer written beside the job folder, and a summary."""
        created = self.started = time.time()
        try:
            ending = self.conclude(*self.run_steps())
        except ToolkitError as exc:
            self.stop_background()
            ending = Ending("Failed", exc.exit_code, f"ClientError: {exc}")
            log.error("%s", exc)
        except KeyboardInterrupt:
            self.stop_background()
            ending = Ending("Stopped", 130)
            log.warning("interrupted before the hosts started")
        finally:
            self.release()
        self.timeline.end()
        answer = self.describe_job(ending, created)
        describe_path = self.opts.workdir / f"{self.request.job_name}.json"
        describe_path.parent.mkdir(parents=True, exist_ok=True)
        describe_path.write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
        job = JobResult(ending.exit_code, ending.status, answer, describe_path, self.job_dir)
        job.summary = self.summary(job, ending)
        return job

    def run_steps(self) -> tuple[Ending, Optional[str]]:
        """prepare -> data -> every host run to its end: how that ended, and what the syncer could
        not upload (None: nothing)."""
        prepare, data, run = self.STEPS
        self.timeline.begin(*prepare)
        self.prepare()
        self.timeline.begin(*data)
        self.fetch_data()
        self.start_sync()
        self.timeline.begin(*run)
        self.started = time.time()
        self.result = result = self.run_hosts()
        sync_error = self.stop_background()
        first = result.first_failure
        if result.timed_out:
            ending = Ending("Stopped", first.exit_code if first else 0, self.timeout_reason(), "MaxRuntimeExceeded")
        elif result.interrupted:
            ending = Ending("Stopped", first.exit_code if first else 130)
        elif first is not None:
            ending = Ending("Failed", first.exit_code, f"AlgorithmError: {self.algorithm_error(first)}")
        else:
            ending = Ending("Completed")
        return ending, sync_error

    def timeout_reason(self) -> str:
        return ""  # training says it in SecondaryStatus (MaxRuntimeExceeded)

    def algorithm_error(self, first: hostrun.HostExit) -> str:
        return failure_reason(self.hosts, first.host) or f"{first.host} exited with code {first.exit_code}"

    def conclude(self, ending: Ending, sync_error: Optional[str]) -> Ending:
        """Upload the model (unless the job failed) and the output; a sync error fails a completed job."""
        self.timeline.begin("upload", "Uploading", "Uploading generated training model")
        with tempfile.TemporaryDirectory(prefix="toolkit-local-") as scratch:
            self.artifacts = upload_artifacts(self.storage, self.request, self.hosts, Path(scratch),
                                              with_model=ending.status != "Failed")
        if sync_error and ending.status == "Completed":
            return Ending("Failed", 2, f"ClientError: {sync_error}")
        return ending

    def release(self) -> None:
        """Whatever happened: FastFile channels (read-only, as the platform mounts them) writable again."""
        for channel in self.request.channels:
            if channel.mode == "FastFile":
                for hd in self.hosts:
                    make_writable(hd.data / channel.name)

    def describe_job(self, ending: Ending, created: float) -> dict[str, Any]:
        secondary = ending.secondary or ending.status
        now = iso(time.time())
        self.timeline.transitions.append({"Status": secondary, "StartTime": now, "EndTime": now,
                                          "StatusMessage": ending.failure or f"Training job {ending.status.lower()}"})
        return describe(self.request, status=ending.status, secondary=secondary, created=created,
                        started=self.started, ended=time.time(), region=self.region, artifacts=self.artifacts,
                        failure=ending.failure[:1024], transitions=self.timeline.transitions)

    def summary(self, job: JobResult, ending: Ending) -> list[str]:
        d = self.timeline.durations
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in d.items())
        lines = [f"{self.KIND} {self.request.job_name}: {job.status} (exit code {job.exit_code}) in "
                 f"{sum(d.values()):.2f} s", f"  phases: {phases}"]
        if self.result is not None and len(self.result.exits) > 1:
            lines.append("  hosts: " + ", ".join(f"{e.host} exit {e.exit_code}" for e in self.result.exits))
        for label, done in self.transfers.items():
            lines.append(f"  input {label}: {done}")
        if self.feeders:
            lines.append("  pipe: " + ", ".join(f"{f.host} {f.source.channel.name} {f.epochs} {self.PIPE_READS}"
                                                 for f in self.feeders))
        if ending.failure:
            lines.append(f"  FailureReason: {ending.failure.splitlines()[0]}")
        lines += self.results(job)
        lines.append(f"  describe: {job.describe_path}")
        return lines

    def results(self, job: JobResult) -> list[str]:
        """The summary's lines about what the job left, and where."""
        lines = []
        if self.artifacts.model:
            lines.append(f"  model: {self.artifacts.model}")
        if self.artifacts.output:
            lines.append(f"  output: {self.artifacts.output}")
        if self.syncer:
            for label, count in self.syncer.uploaded.items():
                where = self.request.checkpoint_uri if label == "checkpoints" else "intermediate output"
                lines.append(f"  {label}: {count} upload(s) to {where}")
        if self.jobenv is not None:
            lines.append(f"  environment: {self.jobenv.describe()}")
        lines.append(f"  job folder: {self.job_dir} ({describe_size(self.job_dir)}; `toolkit local clean --workdir "
                     f"{self.opts.workdir} {self.request.job_name}` removes it)")
        return lines


def run_training_job(request: TrainingRequest, opts: RunOptions, environ: Mapping[str, str],
                     storage: Storage) -> JobResult:
    return TrainingJob(request, opts, environ, storage).run()
