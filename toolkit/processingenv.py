"""``ProcessingEnv``: a processing job's facts, parsed once into a frozen object. Part of
toolkit.environment (which re-exports it), in a module of its own so that ``train`` does not build
this class (toolkit/environment.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional

from toolkit import settings
from toolkit.environment import (
    DEFAULT_BASE_DIR,
    TrainingEnv,
    _Cluster,
    _parse_resource_config,
    _read_json,
)
from toolkit.errors import ConfigError


def _named_paths(specs: Any, kind: str, key: str, base: Path, path: Path) -> dict[str, Path]:
    """``{name: local path}`` of processingjobconfig.json's inputs or outputs."""
    if specs is None:
        return {}
    if not isinstance(specs, list):
        raise ConfigError(f"{path}: {kind} must be a list of objects")
    found: dict[str, Path] = {}
    for i, spec in enumerate(specs):
        name = spec.get(f"{kind[:-1]}Name") if isinstance(spec, dict) else None
        local = (spec.get(key) or {}).get("LocalPath") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}: {kind}[{i}] has no {kind[:-1]}Name")
        if local is None:
            continue  # not an S3 input/output (a dataset definition or a feature store output)
        found[name] = rebase(str(local), base)
    return found


def rebase(container_path: str, base: Path) -> Path:
    """A path the job names under /opt/ml, as it is under ``base`` (the same path in a container)."""
    path = Path(container_path)
    default = Path(DEFAULT_BASE_DIR)
    if base == default or default not in path.parents:
        return path
    return base / path.relative_to(default)


@dataclass(frozen=True)
class ProcessingEnv(_Cluster):
    """A processing job's facts, read once from (environ, base dir).

    The platform writes ``<base>/config/processingjobconfig.json`` (the CreateProcessingJob request
    as described) and ``<base>/config/resourceconfig.json`` (current_host, hosts), and starts the
    container with the request's ContainerEntrypoint and ContainerArguments. Paths the request names
    under /opt/ml are reported under ``base`` when the base is elsewhere (a test's folder).
    """

    base_dir: Path
    environ: Mapping[str, str]
    job_config: Mapping[str, Any]
    resource_config: Mapping[str, Any]
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    job_name: str
    log_level: int
    region: str
    submit_dir: Optional[str] = None
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], base_dir: Optional[str] = None) -> ProcessingEnv:
        """Parse the processing config; raises ``ConfigError`` naming the file and what is wrong."""
        base = settings.base_dir(environ, base_dir)
        config = base / "config"
        warnings: list[str] = []
        job_path = config / "processingjobconfig.json"
        job = _read_json(job_path, "processing job config")
        if job is None:
            warnings.append(f"{job_path} not found: no inputs or outputs are known (outside SageMaker)")
            job = {}
        resources = _parse_resource_config(config / "resourceconfig.json", warnings)
        output_config = job.get("ProcessingOutputConfig") or {}
        if not isinstance(output_config, dict):
            raise ConfigError(f"{job_path}: ProcessingOutputConfig must be an object")
        return cls(
            base_dir=base,
            environ=MappingProxyType(dict(environ)),
            job_config=MappingProxyType(job),
            resource_config=MappingProxyType(resources),
            inputs=MappingProxyType(_named_paths(job.get("ProcessingInputs"), "Inputs", "S3Input", base,
                                                 job_path)),
            outputs=MappingProxyType(_named_paths(output_config.get("Outputs"), "Outputs", "S3Output", base,
                                                  job_path)),
            job_name=str(job.get("ProcessingJobName") or ""),
            log_level=settings.log_level(environ),
            region=settings.region(environ),
            submit_dir=settings.read(environ, "SAGEMAKER_SUBMIT_DIRECTORY"),
            warnings=tuple(warnings),
        )

    @property
    def instance_type(self) -> str:
        resources = (self.job_config.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        return str(self.resource_config.get("current_instance_type") or resources.get("InstanceType") or "local")

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "config"

    @property
    def message_file(self) -> Path:
        """/opt/ml/output/message: the platform shows its first 1 KB as the job's ExitMessage."""
        return self.base_dir / "output" / "message"

    def settings_view(self) -> Mapping[str, str]:
        """The environment as fetchers and installers receive it."""
        return self.environ

    def training_view(self, code_dir: Path, entry_point: str) -> TrainingEnv:
        """The job as ``toolkit_launch`` implementations read it (they take a TrainingEnv): this
        job's hosts, environment and log level, with no hyperparameters and no channels."""
        return TrainingEnv(
            base_dir=self.base_dir, environ=self.environ, hyperparameters=MappingProxyType({}),
            settings=MappingProxyType({}), input_data_config=MappingProxyType({}),
            resource_config=self.resource_config, entry_point=entry_point, submit_dir=self.submit_dir,
            log_level=self.log_level, region=self.region, job_name=self.job_name, source_dir=code_dir,
        )
