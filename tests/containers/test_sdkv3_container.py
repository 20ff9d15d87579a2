"""A real SDK v3 (``ModelTrainer``) request replayed in container mode on the CPU reference image: the
request's entrypoint, /bin/bash running the SDK's own sm_drivers/sm_train.sh, runs in the image as it
does on SageMaker, with the image's bash, python3 and pip (docs/fetching.md); the script imports
sagemaker_training, which the image makes importable without train (docs/images.md).

The request and the sourcecode.json / distributed.json it uploaded are the ones recorded with sagemaker
3.27.0 (tests/local/data). The SDK's driver scripts are its code, so they are not kept here: they are
taken from the published sagemaker-train and sagemaker-core wheels of that release (``pip download``),
and sm_train.sh is made from that wheel's own templates.py the way ModelTrainer._prepare_train_script
fills them for a command with args."""

from __future__ import annotations

import json
import runpy
import shlex
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, clean_environ

from .engines import Built, Engine

pytestmark = pytest.mark.container
DATA = Path(__file__).resolve().parents[1] / "local" / "data"
REQUEST = json.loads((DATA / "sdk_v3_request.json").read_text())
SOURCE = json.loads((DATA / "sdk_v3_sm_drivers" / "sourcecode.json").read_text())
WHEELS = ("sagemaker-train==1.27.0", "sagemaker-core==2.27.0")
# train does not run here: sagemaker_training imports through the image's toolkit-stand-ins.pth
SCRIPT = """
import json, os, sys
from sagemaker_training import environment
seen = {"argv": sys.argv[1:], "hps": json.loads(os.environ["SM_HPS"]), "python": sys.prefix, "cwd": os.getcwd(),
        "rows": open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "rows.csv")).read(),
        "hosts": environment.Environment().hosts, "environment": environment.__file__}
json.dump(seen, open("/opt/ml/model/seen.json", "w"))
"""


@pytest.fixture(scope="module")
def sm_drivers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sm_drivers channel as the SDK uploads it for the recorded request."""
    wheels = tmp_path_factory.mktemp("sdk-wheels")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *WHEELS],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot download the SDK's wheels ({' '.join(WHEELS)}): {proc.stderr.strip()[-300:]}")
    drivers = tmp_path_factory.mktemp("sm_drivers")
    prefix = "sagemaker/train/container_drivers/"
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    target = drivers / name[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(name))
                elif name == "sagemaker/core/utils/install_requirements.py":
                    (drivers / "scripts").mkdir(exist_ok=True)
                    (drivers / "scripts" / "install_requirements.py").write_bytes(zf.read(name))
                elif name == "sagemaker/train/templates.py":
                    (wheels / "templates.py").write_bytes(zf.read(name))
    templates = runpy.run_path(str(wheels / "templates.py"))
    # ModelTrainer._prepare_train_script for SourceCode(source_dir, command, args), no requirements
    command = " ".join([*SOURCE["command"].split(), *(shlex.quote(str(a)) for a in SOURCE["args"])])
    script = templates["TRAIN_SCRIPT_TEMPLATE"].format(
        working_dir="cd /opt/ml/input/data/code \n", install_requirements="",
        execute_driver=templates["EXECUTE_BASE_COMMANDS"].format(base_command=command))
    (drivers / "sm_train.sh").write_text(script)
    for name in ("sourcecode.json", "distributed.json"):
        (drivers / name).write_bytes((DATA / "sdk_v3_sm_drivers" / name).read_bytes())
    return drivers


def test_sdk_v3_request_runs_the_sdk_drivers_in_the_image(engine: Engine, cpu_image: Built, sm_drivers: Path,
                                                           tmp_path: Path) -> None:
    code, data, out, work = (tmp_path / n for n in ("code", "data", "out", "work"))
    code.mkdir()
    (code / "train.py").write_text(SCRIPT)
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n")
    local = {"code": code, "sm_drivers": sm_drivers, "train": data}
    request: dict[str, Any] = json.loads(json.dumps(REQUEST))
    request["TrainingJobName"] = f"v3-{uuid.uuid4().hex[:8]}"
    request["AlgorithmSpecification"]["TrainingImage"] = cpu_image.tag
    for channel in request["InputDataConfig"]:
        channel["DataSource"]["S3DataSource"]["S3Uri"] = str(local[channel["ChannelName"]])
    request["OutputDataConfig"]["S3OutputPath"] = str(out)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run([str(BIN / "toolkit"), "local", "train", "--request", str(path), "--engine", engine.name,
                           "--workdir", str(work)], env=clean_environ(), capture_output=True, text=True, timeout=600)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Executing command: python3 train.py --from-command x --note 'two words' --n 7" in proc.stdout
        with tarfile.open(out / request["TrainingJobName"] / "output" / "model.tar.gz") as tar:
            seen = json.loads(tar.extractfile("seen.json").read())  # type: ignore[union-attr]
        assert seen["argv"] == ["--from-command", "x", "--note", "two words", "--n", "7"]
        assert seen["hps"] == {"epochs": 3, "optimizer": "adam"}
        assert seen["python"] == "/opt/venv"  # the SDK's `command -v python3`: the image's venv first on PATH
        assert seen["cwd"] == "/opt/ml/input/data/code" and seen["rows"] == "1,2\n"
        # the stand-in, though the job bypassed train (docs/images.md)
        assert seen["hosts"] == ["algo-1"] and "/toolkit/compat/sagemaker_training/" in seen["environment"]
    finally:
        engine.remove(f"{request['TrainingJobName']}-algo-1")
        engine("network", "rm", "-f", f"toolkit-{request['TrainingJobName']}", check=False)
