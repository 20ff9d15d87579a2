"""Training scripts written the ways public scripts for the AWS framework containers are written,
each run through the real ``train`` on a job folder: SM_* defaults for argparse, sagemaker_training's
``environment.Environment()``, sagemaker_containers' ``training_env()`` and ``beta.framework``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import Job, make_wheel, scratch_venv

OUT = """import json, os
def save(obj):
    json.dump(obj, open(os.path.join(os.environ['SM_MODEL_DIR'], 'out.json'), 'w'))
"""

ARGPARSE_SM_DEFAULTS = OUT + """
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--hosts", type=list, default=json.loads(os.environ["SM_HOSTS"]))
parser.add_argument("--current-host", type=str, default=os.environ["SM_CURRENT_HOST"])
parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--data-dir", type=str, default=os.environ["SM_CHANNEL_TRAINING"])
parser.add_argument("--num-gpus", type=int, default=os.environ["SM_NUM_GPUS"])
args = parser.parse_args()
save(vars(args))
"""

ENVIRONMENT_ARGPARSE = OUT + """
import argparse
from sagemaker_training import environment
env = environment.Environment()
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--hosts", type=list, default=env.hosts)
parser.add_argument("--current-host", type=str, default=env.current_host)
parser.add_argument("--model-dir", type=str, default=env.model_dir)
parser.add_argument("--data-dir", type=str, default=env.channel_input_dirs["training"])
parser.add_argument("--num-gpus", type=int, default=env.num_gpus)
args = parser.parse_args()
save({**vars(args), "hps": env.hyperparameters, "output": env.output_data_dir, "master": env.is_master,
      "module": env.module_name, "training_env": dict(env), "module_model_dir": environment.model_dir})
"""

PACKAGE_ATTRIBUTE = OUT + """
import sagemaker_training
env = sagemaker_training.environment.Environment()
save({"hosts": env.hosts, "instance_groups": env.instance_groups_dict, "hetero": env.is_hetero,
      "cpus": env.num_cpus})
"""

CONTAINERS_TRAINING_ENV = OUT + """
import sagemaker_containers
env = sagemaker_containers.training_env()
save({"hosts": env.hosts, "current": env.current_host, "data": env.channel_input_dirs.get("training"),
      "model_dir": env.model_dir, "gpus": env.num_gpus, "hps": env.hyperparameters, "user_args": env.to_cmd_args(),
      "output": env.output_data_dir})
"""

# an sklearn-container script: trains when run, and is the inference handler when imported
BETA_FRAMEWORK = OUT + """
from sagemaker_containers.beta.framework import (
    content_types, encoders, env, modules, transformer, worker)


def input_fn(input_data, content_type):
    if content_type == content_types.CSV:
        return encoders.decode(input_data, content_type)
    raise ValueError(content_type)


def output_fn(prediction, accept):
    if accept == "application/json":
        return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
    return worker.Response(encoders.encode(prediction, content_types.CSV), mimetype="text/csv")


if __name__ == "__main__":
    rows = input_fn(open(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "rows.csv")).read(), "text/csv")
    answer = output_fn(rows.sum(axis=1), "application/json")
    save({"body": answer.get_data(as_text=True), "mimetype": answer.mimetype, "model_dir": env.model_dir,
          "csv": encoders.encode([[1, 2], [3, 4]], content_types.CSV),
          "env_hosts": env.read_resource_config()["hosts"]})
"""


def make(job: Job, script: str, **hps: object) -> Job:
    job.hyperparameters({"sagemaker_program": "train.py", "epochs": 3, **hps})
    job.channels("training").resources(current="algo-2", hosts=("algo-1", "algo-2"))
    (job.base / "input" / "data" / "training" / "rows.csv").write_text("1,2,3\n4,5,6\n")
    job.script("train.py", script)
    return job


def run(job: Job, **extra: str) -> dict:
    result = job.run(**extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((job.model / "out.json").read_text())


def test_argparse_with_sm_defaults(job: Job) -> None:
    out = run(make(job, ARGPARSE_SM_DEFAULTS, lr=0.5))
    base = str(job.base)
    assert out == {"epochs": 3, "lr": 0.5, "hosts": ["algo-1", "algo-2"], "current_host": "algo-2",
                   "model_dir": f"{base}/model", "data_dir": f"{base}/input/data/training", "num_gpus": 0}


def test_sagemaker_training_environment(job: Job) -> None:
    out = run(make(job, ENVIRONMENT_ARGPARSE))
    base = str(job.base)
    assert out["hosts"] == ["algo-1", "algo-2"] and out["current_host"] == "algo-2"
    assert out["model_dir"] == out["module_model_dir"] == f"{base}/model"
    assert out["data_dir"] == f"{base}/input/data/training" and out["num_gpus"] == 0
    assert out["epochs"] == 3 and out["hps"] == {"epochs": 3}
    assert out["output"] == f"{base}/output/data" and out["master"] is False and out["module"] == "train"
    # dict(env) is what the official toolkit exports as SM_TRAINING_ENV (train exports it too)
    assert out["training_env"]["channel_input_dirs"] == {"training": f"{base}/input/data/training"}


def test_sagemaker_training_as_attribute(job: Job) -> None:
    out = run(make(job, PACKAGE_ATTRIBUTE))
    assert out["hosts"] == ["algo-1", "algo-2"] and out["hetero"] is False
    assert out["instance_groups"]["homogeneousCluster"]["hosts"] == ["algo-1", "algo-2"] and out["cpus"] >= 1


def test_sagemaker_containers_training_env(job: Job) -> None:
    out = run(make(job, CONTAINERS_TRAINING_ENV, lr=0.5))
    base = str(job.base)
    assert out == {"hosts": ["algo-1", "algo-2"], "current": "algo-2", "data": f"{base}/input/data/training",
                   "model_dir": f"{base}/model", "gpus": 0, "hps": {"epochs": 3, "lr": 0.5},
                   "user_args": ["--epochs", "3", "--lr", "0.5"], "output": f"{base}/output/data"}


def test_sagemaker_containers_beta_framework(job: Job) -> None:
    pytest.importorskip("numpy")
    out = run(make(job, BETA_FRAMEWORK))
    assert out["body"] == "[6.0, 15.0]" and out["mimetype"] == "application/json"
    assert out["csv"] == "1,2\n3,4\n"
    assert out["model_dir"] == f"{job.base}/model" and out["env_hosts"] == ["algo-1", "algo-2"]


def test_a_name_not_covered_fails_naming_the_stand_in(job: Job) -> None:
    make(job, "from sagemaker_training import entry_point\n")
    result = job.run()
    assert result.returncode == 1
    first = job.failure.read_text().splitlines()[0]
    assert "sagemaker_training.entry_point is not covered by sagemaker-toolkit's stand-in for sagemaker_training" \
        in first
    assert "requirements.txt" in first


def test_a_real_installed_package_wins(job: Job, tmp_path: Path) -> None:
    # installed into the job's Python from requirements.txt: site-packages, after PYTHONPATH
    wheel = make_wheel(tmp_path, "sagemaker_training", "REAL = 'the real one'\n")
    make(job, OUT + "import sagemaker_training\nsave({'real': sagemaker_training.REAL})\n")
    job.script("requirements.txt", f"{wheel}\n")
    python = scratch_venv(tmp_path / "venv")
    result = subprocess.run([str(python), "-c", "from toolkit.scripts import train_main; train_main()"],
                            env=job.environ(PIP_NO_INDEX="1"), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((job.model / "out.json").read_text()) == {"real": "the real one"}


def test_the_users_own_module_of_that_name_wins(job: Job) -> None:
    make(job, OUT + "import sagemaker_containers\nsave({'mine': sagemaker_containers.MINE})\n")
    job.script("sagemaker_containers.py", "MINE = True\n")
    assert run(job) == {"mine": True}

