"""`IMAGE train` as SageMaker runs it: a real /opt/ml mounted into the CPU image."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from helpers import wait_for

from .engines import Built

pytestmark = pytest.mark.container

TRAIN = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--learning-rate", type=float)
parser.add_argument("--name")
args = parser.parse_args()

def numbers(channel):
    folder = os.environ["SM_CHANNEL_" + channel.upper()]
    return [float(x) for f in sorted(os.listdir(folder)) for x in open(os.path.join(folder, f)).read().split()]

train, validation = numbers("train"), numbers("validation")
model = {"epochs": args.epochs, "learning_rate": args.learning_rate, "name": args.name,
         "weight": sum(train) * args.learning_rate, "validated": len(validation),
         "hosts": json.loads(os.environ["SM_HOSTS"]), "python": sys.prefix, "where": os.getcwd()}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as fh:
    json.dump(model, fh)
print("trained", model["weight"])
"""


def sagemaker_job(make_job, name: str, hyperparameters: dict):
    job = make_job(name)
    job.hyperparameters(hyperparameters).channels("train", "validation").resources()
    (job.base / "input" / "data" / "train" / "part-0.txt").write_text("1 2 3\n")
    (job.base / "input" / "data" / "train" / "part-1.txt").write_text("4\n")
    (job.base / "input" / "data" / "validation" / "v.txt").write_text("7 8\n")
    return job


HPS = {"epochs": 3, "learning-rate": 0.5, "name": "two words", "sagemaker_program": "train.py"}


def test_train_runs_a_job_from_a_mounted_opt_ml(cpu_image: Built, containers, make_job) -> None:
    job = sagemaker_job(make_job, "mounted", HPS)
    job.script("train.py", TRAIN)
    proc = containers.run(cpu_image.tag, "train", volumes={job.base: "/opt/ml"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads((job.model / "model.json").read_text())
    assert model == {"epochs": 3, "learning_rate": 0.5, "name": "two words", "weight": 5.0, "validated": 2,
                     "hosts": ["algo-1"], "python": "/opt/venv", "where": "/opt/ml/code"}
    assert job.success.exists()
    assert not job.failure.exists()
    assert "trained 5.0" in proc.stdout


def _sourcedir(script: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_train_fetches_the_code_from_s3(cpu_image: Built, containers, make_job, s3, s3_env) -> None:
    """moto's S3 server on the host's 127.0.0.1, reached by a container on the host's network."""
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="code/sourcedir.tar.gz", Body=_sourcedir(TRAIN))
    job = sagemaker_job(make_job, "from-s3",
                        {**HPS, "sagemaker_submit_directory": "s3://jobs/code/sourcedir.tar.gz"})
    # Code baked into /opt/ml/code that must not run: the submit directory wins.
    job.script("train.py", "raise SystemExit(9)\n")
    proc = containers.run(cpu_image.tag, "train", volumes={job.base: "/opt/ml"}, env=s3_env, network="host")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads((job.model / "model.json").read_text())
    assert model["weight"] == 5.0
    assert model["validated"] == 2
    assert job.success.exists()


def test_failing_script_gives_its_exit_code_and_the_failure_file(cpu_image: Built, containers, make_job) -> None:
    job = sagemaker_job(make_job, "failing", HPS)
    job.script("train.py", "import sys\nprint('ValueError: learning rate too high', file=sys.stderr)\nsys.exit(3)\n")
    proc = containers.run(cpu_image.tag, "train", volumes={job.base: "/opt/ml"})
    assert proc.returncode == 3
    lines = job.failure.read_text().splitlines()
    assert lines[0] == "ValueError: learning rate too high", lines
    assert lines[1] == "Exit code: 3", lines
    assert not job.success.exists()


CHECKPOINTING = """
import json, os, signal, time
def stop(signum, frame):
    with open("/opt/ml/checkpoints/checkpoint.json", "w") as fh:
        json.dump({"signal": signum, "at": time.time(), "step": step}, fh)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
os.makedirs("/opt/ml/checkpoints", exist_ok=True)
step = 0
open("/opt/ml/checkpoints/started", "w").close()
while True:
    step += 1
    time.sleep(0.05)
"""


def test_stop_reaches_the_script_at_once_and_it_checkpoints(cpu_image: Built, containers, make_job) -> None:
    job = sagemaker_job(make_job, "stopped", HPS)
    job.script("train.py", CHECKPOINTING)
    name = containers.run(cpu_image.tag, "train", volumes={job.base: "/opt/ml"}, detach=True)
    wait_for(lambda: (job.base / "checkpoints" / "started").exists(), 60, "the training script to start")
    asked = time.time()
    # 30 s: a stop that only the engine's SIGKILL ends would take that long.
    containers.engine("stop", "-t", "30", name, timeout=60)
    stopped = time.time() - asked
    assert containers.exit_code(name) == 128 + 15, containers.logs(name)
    checkpoint = json.loads((job.base / "checkpoints" / "checkpoint.json").read_text())
    assert checkpoint["signal"] == 15
    assert checkpoint["step"] > 0
    assert checkpoint["at"] - asked < 5, "the script saw SIGTERM late"
    assert stopped < 15, f"podman stop took {stopped:.1f} s"
    lines = job.failure.read_text().splitlines()
    assert lines[0] == "stopped by SIGTERM during run", lines
    assert "Exit code: 143" in lines, lines
