"""One host's /opt/ml as the platform lays it out before ``train`` starts.

In-process mode uses ``<job folder>/<host>`` as that host's /opt/ml (SAGEMAKER_BASE_DIR); container
mode mounts the same folder at /opt/ml.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from toolkit.local.request import TrainingRequest

CONTAINER_BASE = "/opt/ml"


@dataclass(frozen=True)
class HostDir:
    """The folders of one host, seen from this machine."""

    host: str
    base: Path

    @property
    def config(self) -> Path:
        return self.base / "input" / "config"

    @property
    def data(self) -> Path:
        return self.base / "input" / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output_data(self) -> Path:
        return self.base / "output" / "data"

    @property
    def intermediate(self) -> Path:
        return self.base / "output" / "intermediate"

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def message(self) -> Path:
        """/opt/ml/output/message: a processing job's ExitMessage."""
        return self.base / "output" / "message"

    def under(self, container_path: str) -> Path:
        """Where a path the job names under /opt/ml is on this machine."""
        return self.base / Path(container_path).relative_to(CONTAINER_BASE)

    def checkpoints(self, local_path: str, in_container: bool) -> Path:
        """Where CheckpointConfig.LocalPath is on this machine: under the host folder when it is
        under /opt/ml (or always, in container mode, where it is mounted), else as given."""
        path = Path(local_path)
        if path == Path(CONTAINER_BASE) or Path(CONTAINER_BASE) in path.parents:
            return self.base / path.relative_to(CONTAINER_BASE)
        if in_container:
            return self.base / "mounts" / path.relative_to("/")
        return path


def resource_config(host: str, hosts: Sequence[str], instance_type: str) -> dict[str, Any]:
    """resourceconfig.json for ``host``, in the platform's key order."""
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": list(hosts),
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                             "hosts": list(hosts)}],
        "network_interface_name": "eth0",
    }


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def lay_out(hd: HostDir, request: TrainingRequest, checkpoint_dir: Optional[str]) -> None:
    """Write the config files and create the folders the contract promises."""
    for folder in (hd.config, hd.data, hd.model, hd.output_data, hd.intermediate.parent, hd.code):
        folder.mkdir(parents=True, exist_ok=True)
    _write(hd.config / "hyperparameters.json", dict(request.hyperparameters))
    _write(hd.config / "inputdataconfig.json", {c.name: c.config_entry() for c in request.channels})
    _write(hd.config / "resourceconfig.json", resource_config(hd.host, request.hosts, request.instance_type))
    if request.checkpoint_uri and checkpoint_dir:
        _write(hd.config / "checkpointconfig.json", {"LocalPath": checkpoint_dir, "S3Uri": request.checkpoint_uri})
