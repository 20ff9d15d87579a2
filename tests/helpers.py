"""Helpers shared by the tests: SageMaker-style job folders, installed plugins, running the real
console scripts. Import them with ``from helpers import ...`` (a conftest module is not importable
reliably: pytest may have imported another folder's conftest under the same name)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without SageMaker/toolkit/AWS variables, plus ``extra``."""
    drop = ("SM_", "SAGEMAKER_", "TOOLKIT_", "AWS_", "TRAINING_JOB_NAME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


class Job:
    """A /opt/ml tree as SageMaker lays it out, under a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "opt" / "ml"
        self.config = self.base / "input" / "config"
        self.code = self.base / "code"
        self.config.mkdir(parents=True)

    def hyperparameters(self, hps: Mapping[str, Any], encode: bool = True) -> Job:
        data = {k: json.dumps(v) if encode else v for k, v in hps.items()}
        (self.config / "hyperparameters.json").write_text(json.dumps(data))
        return self

    def channels(self, *names: str, mode: str = "File", create: bool = True) -> Job:
        spec = {n: {"ContentType": "text/csv", "TrainingInputMode": mode,
                    "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                for n in names}
        (self.config / "inputdataconfig.json").write_text(json.dumps(spec))
        if create:
            for n in names:
                (self.base / "input" / "data" / n).mkdir(parents=True, exist_ok=True)
        return self

    def resources(self, current: str = "algo-1", hosts: tuple[str, ...] = ("algo-1",), **more: Any) -> Job:
        data = {"current_host": current, "hosts": list(hosts), "current_group_name": "homogeneousCluster",
                "current_instance_type": "ml.m5.xlarge", "network_interface_name": "eth0",
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                     "instance_type": "ml.m5.xlarge", "hosts": list(hosts)}]}
        data.update(more)
        (self.config / "resourceconfig.json").write_text(json.dumps(data))
        return self

    def script(self, name: str, text: str, mode: int = 0o644, where: Optional[Path] = None) -> Path:
        folder = where or self.code
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def success(self) -> Path:
        return self.base / "output" / "success"

    @property
    def model(self) -> Path:
        return self.base / "model"

    def environ(self, **extra: str) -> dict[str, str]:
        return clean_environ(SAGEMAKER_BASE_DIR=str(self.base), **extra)

    def run(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
        """Run the real ``train`` console script on this job."""
        return subprocess.run([str(BIN / "train"), *args], env=self.environ(**extra),
                              capture_output=True, text=True, timeout=timeout)


class PluginSite:
    """Installs plugin distributions the way pip does (a module plus a ``.dist-info`` folder
    with ``entry_points.txt``) into a folder that a subprocess gets on PYTHONPATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, source: str, module: Optional[str] = None) -> None:
        module = module or name.replace("-", "_")
        (self.root / f"{module}.py").write_text(source)
        info = self.root / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[toolkit.plugins]\n{name} = {module}\n")

    def environ(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root)}


def run_cli(*argv: str, env: Optional[Mapping[str, str]] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one of the console scripts (``toolkit``, ``train``, ``serve``) from this venv."""
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], env=dict(env or clean_environ()),
                          capture_output=True, text=True, timeout=timeout)


def make_wheel(folder: Path, name: str, module_source: str) -> Path:
    """A real wheel of a one-module package, so pip installs it with no index and no build."""
    import zipfile

    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}.py", module_source)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def scratch_venv(path: Path) -> Path:
    """A new venv that sees this one's packages (toolkit, pip) but installs into itself."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir (not a bare path) so the parent's own .pth files, editable installs included, apply
    (Path(purelib) / "parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    return python
