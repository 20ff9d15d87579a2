"""The job's results, where the platform puts them, and its DescribeTrainingJob answer.

- ``<output path>/<job>/output/model.tar.gz``: /opt/ml/model (every host's, merged in host order;
  a later host's file replaces an earlier host's file of the same name, as SDK local mode does);
  with OutputDataConfig.CompressionType NONE, the files themselves under ``.../output/model/``.
- ``<output path>/<job>/output/output.tar.gz``: /opt/ml/output/data, merged the same way.
- FailureReason: the first 1024 bytes of the failed host's /opt/ml/output/failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from toolkit import plan
from toolkit.local.jobdir import HostDir
from toolkit.local.request import TrainingRequest
from toolkit.local.storage import Storage, walk_files

log = logging.getLogger("toolkit")
FAILURE_LIMIT = 1024
ACCOUNT = "000000000000"  # no account: the job ran here


def merged_files(folders: Sequence[tuple[str, Path]]) -> dict[str, Path]:
    """Relative name -> file, later hosts replacing earlier ones (logged)."""
    files: dict[str, Path] = {}
    owner: dict[str, str] = {}
    for host, folder in folders:
        for name, path in walk_files(folder):
            if name in files:
                log.warning("%s: %s replaces the file of the same name from %s", host, name, owner[name])
            files[name] = path
            owner[name] = host
    return files


def make_tarball(files: dict[str, Path], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        for name in sorted(files):
            tar.add(str(files[name]), arcname=name, recursive=False)
    return target


def failure_reason(hosts: Sequence[HostDir], failed_host: Optional[str]) -> str:
    """What the failed host wrote to /opt/ml/output/failure (its first 1024 bytes)."""
    order = sorted(hosts, key=lambda hd: hd.host != failed_host)
    for hd in order:
        if hd.failure.is_file():
            data = hd.failure.read_bytes()[:FAILURE_LIMIT]
            text = data.decode("utf-8", "ignore").strip()
            if text:
                return text
    return ""


@dataclass
class Artifacts:
    model: Optional[str] = None
    output: Optional[str] = None


def upload_artifacts(storage: Storage, request: TrainingRequest, hosts: Sequence[HostDir], scratch: Path,
                     with_model: bool) -> Artifacts:
    """Pack and upload the model (when ``with_model``) and the output data."""
    found = Artifacts()
    if with_model:
        files = merged_files([(hd.host, hd.model) for hd in hosts])
        model = plan.model_artifact(request.output_path, request.job_name, request.output_compression)
        if request.output_compression == "NONE":
            target = model
            storage.upload_files([(path, target.join(*name.split("/"))) for name, path in files.items()],
                                 "model artifacts")
            found.model = target.uri + "/"
        else:
            tarball = make_tarball(files, scratch / "model.tar.gz")
            storage.upload_file(tarball, model)
            found.model = model.uri
    files = merged_files([(hd.host, hd.output_data) for hd in hosts])
    tarball = make_tarball(files, scratch / "output.tar.gz")
    output = plan.output_artifact(request.output_path, request.job_name)
    storage.upload_file(tarball, output)
    found.output = output.uri
    return found


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


def describe(request: TrainingRequest, *, status: str, secondary: str, created: float, started: float,
             ended: float, region: str, artifacts: Artifacts, failure: str,
             transitions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A DescribeTrainingJob response for the finished job (times as ISO 8601 strings)."""
    raw = dict(request.raw)
    answer: dict[str, Any] = {
        "TrainingJobName": request.job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{request.job_name.lower()}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "HyperParameters": dict(request.hyperparameters),
        "AlgorithmSpecification": raw.get("AlgorithmSpecification", {}),
        "InputDataConfig": raw.get("InputDataConfig", []),
        "OutputDataConfig": raw.get("OutputDataConfig", {}),
        "ResourceConfig": raw.get("ResourceConfig", {}),
        "StoppingCondition": raw.get("StoppingCondition", {}),
        "CreationTime": iso(created),
        "TrainingStartTime": iso(started),
        "TrainingEndTime": iso(ended),
        "LastModifiedTime": iso(ended),
        "TrainingTimeInSeconds": max(1, round(ended - started)),
        "BillableTimeInSeconds": 0,
        "SecondaryStatusTransitions": list(transitions),
        "Environment": dict(request.environment),
    }
    if request.checkpoint_uri:
        answer["CheckpointConfig"] = {"S3Uri": request.checkpoint_uri, "LocalPath": request.checkpoint_local_path}
    if artifacts.model:
        answer["ModelArtifacts"] = {"S3ModelArtifacts": artifacts.model}
    if failure:
        answer["FailureReason"] = failure
    return answer
