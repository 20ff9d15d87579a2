"""The three kinds of job, as one table: their API calls, fields and log group."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from toolkit.local.storage import Location
from toolkit.plan import Place


@dataclass(frozen=True)
class JobKind:
    name: str  # training, processing, transform
    api: str  # TrainingJob: CreateTrainingJob, DescribeTrainingJob, StopTrainingJob
    log_group: str

    @property
    def name_field(self) -> str:
        return f"{self.api}Name"

    @property
    def status_field(self) -> str:
        return f"{self.api}Status"

    def operation(self, verb: str) -> str:
        """``create`` -> ``create_training_job`` (boto3's method name)."""
        return f"{verb}_{self.name}_job"


KINDS = {kind.name: kind for kind in (
    JobKind("training", "TrainingJob", "/aws/sagemaker/TrainingJobs"),
    JobKind("processing", "ProcessingJob", "/aws/sagemaker/ProcessingJobs"),
    JobKind("transform", "TransformJob", "/aws/sagemaker/TransformJobs"),
)}
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass
class Upload:
    """A file the toolkit uploads before the job starts."""

    src: Path
    dest: Location
    extra_args: dict[str, str] = field(default_factory=dict)


@dataclass
class Submission:
    """Everything ``toolkit submit`` will do for one job, decided before anything is sent."""

    kind: JobKind
    request: dict[str, Any]
    places: list[Place]
    uploads: list[Upload] = field(default_factory=list)
    source: Any = None  # a toolkit.local.source.Packaged to archive and upload
    source_extra_args: dict[str, str] = field(default_factory=dict)
    model_request: Optional[dict[str, Any]] = None  # CreateModel, sent first (transform from a model.tar.gz)

    @property
    def job_name(self) -> str:
        return str(self.request[self.kind.name_field])
