"""``toolkit example``: a whole training job on the bundled example, under a temporary base dir.

It lays out the folder the way SageMaker does (config files, two channels, the code), runs the
real ``train`` flow on it and shows where the model went. No AWS account or network is needed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Optional

EXAMPLE = Path(__file__).parent / "examples" / "train"


def lay_out_job(base: Path, code: Path) -> None:
    """Write what SageMaker writes before ``train`` starts (values JSON-encoded as the SDK v2)."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    hps = {"epochs": 20, "learning-rate": 0.5, "sagemaker_program": "train.py",
           "sagemaker_submit_directory": str(code), "sagemaker_job_name": "toolkit-example",
           "sagemaker_region": "us-east-1", "sagemaker_container_log_level": 20}
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}, indent=1))
    channels = {c: {"ContentType": "text/csv", "TrainingInputMode": "File",
                    "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                for c in ("train", "test")}
    (config / "inputdataconfig.json").write_text(json.dumps(channels, indent=1))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
        "current_instance_type": "ml.m5.large", "network_interface_name": "eth0",
        "instance_groups": [{"instance_group_name": "homogeneousCluster",
                             "instance_type": "ml.m5.large", "hosts": ["algo-1"]}]}, indent=1))
    rng = random.Random(7)
    for channel, count in (("train", 200), ("test", 50)):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        rows = [(x, 3.0 * x + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(count))]
        (folder / "data.csv").write_text("".join(f"{x:.4f},{y:.4f}\n" for x, y in rows))


def run_example(workdir: Optional[str] = None, keep: bool = False) -> int:
    """Run the example; a temporary folder it made is removed afterwards unless ``keep``
    (a ``workdir`` the user named is theirs: kept)."""
    made = not workdir
    base_root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="toolkit-example-"))
    try:
        return _run(base_root)
    finally:
        if made and not keep:
            shutil.rmtree(base_root, ignore_errors=True)
            print(f"removed {base_root} (`toolkit example --keep` keeps it to look inside)")


def _run(base_root: Path) -> int:
    from toolkit.training import train

    base = base_root / "opt" / "ml"
    code = base_root / "code"
    if base.exists():
        shutil.rmtree(base)
    shutil.copytree(EXAMPLE, code, dirs_exist_ok=True)
    lay_out_job(base, code)
    print(f"example job laid out under {base}", flush=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    environ["SAGEMAKER_BASE_DIR"] = str(base)
    code_ = train(environ)
    model = base / "model" / "model.json"
    if code_ == 0 and model.is_file():
        print(f"model file {model}: {model.read_text()}")
        print(f"success file: {base / 'output' / 'success'}")
    else:
        failure = base / "output" / "failure"
        print(f"job failed with exit code {code_}: {failure.read_text() if failure.exists() else ''}")
    return code_
