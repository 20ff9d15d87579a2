"""The stand-ins against the real packages under the same /opt/ml: sagemaker-training 5.1.4's
``environment.Environment()`` and sagemaker-containers 2.8's ``training_env()`` and encoders, each in a
venv of its own (training_peers.py), against ours as a script run by our ``train`` sees them.

The real Environment() is read in a plain Python (its ``train`` waits until algo-1 resolves; reading the
environment does not). Both read the same job folder through SAGEMAKER_BASE_DIR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import Job, clean_environ
from training_peers import containers_python, training_python

PROBE = """
import json, os, sys
from {module} import {name}
e = {make}
paths = {{n: getattr({name}, n) for n in {paths!r}}}
print(json.dumps({{"dict": dict(e), "env_vars": e.to_env_vars(), "cmd": e.to_cmd_args(), "paths": paths,
                  "len": len(e), "properties": sorted(e.properties())}}, sort_keys=True, default=str))
"""
PATHS = ("model_dir", "input_dir", "input_config_dir", "output_dir", "output_data_dir", "output_intermediate_dir",
         "code_dir", "base_dir")
TRAINING = dict(module="sagemaker_training", name="environment", make="environment.Environment()", paths=PATHS)
CONTAINERS = dict(module="sagemaker_containers.beta.framework", name="env",
                  make="__import__('sagemaker_containers').training_env()", paths=PATHS)
# the real beta.framework imports paramiko, flask and gevent, which are not installed in its venv: the same
# module by its private name
CONTAINERS_REAL = {**CONTAINERS, "module": "sagemaker_containers", "name": "_env"}


@pytest.fixture(scope="module")
def peer_training() -> Path:
    return training_python()


@pytest.fixture(scope="module")
def peer_containers() -> Path:
    return containers_python()


def make_job(job: Job, current: str = "algo-2") -> Job:
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(job.code),
                         "sagemaker_container_log_level": 20, "sagemaker_job_name": "diff-job",
                         "sagemaker_distribution_instance_groups": ["homogeneousCluster"],
                         "epochs": 3, "lr": 0.25, "layers": [4, 2], "opts": {"b": 1, "a": "x"}, "x": "y",
                         "name": "run one"})
    job.channels("training", "val-set").resources(current=current, hosts=("algo-1", "algo-2"))
    return job


def theirs(python: Path, job: Job, probe: dict) -> dict:
    env = clean_environ(SAGEMAKER_BASE_DIR=str(job.base), TRAINING_JOB_NAME="diff-job",
                        PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    proc = subprocess.run([str(python), "-c", PROBE.format(**probe)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours(job: Job, probe: dict) -> dict:
    write = "open(os.environ['SM_MODEL_DIR'] + '/o.json', 'w').write("
    job.script("train.py", PROBE.format(**probe).replace("print(", write))
    result = job.run(TRAINING_JOB_NAME="diff-job")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((job.model / "o.json").read_text())


def parsed(env_vars: dict) -> dict:
    """SM_* values as data where they are JSON (SM_TRAINING_ENV's key order is not the point)."""
    out: dict[str, Any] = {}
    for name, value in env_vars.items():
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


@pytest.mark.slow
@pytest.mark.parametrize("current", ["algo-1", "algo-2"])
def test_environment_equals_sagemaker_training(peer_training: Path, job: Job, current: str) -> None:
    make_job(job, current)
    real, mine = theirs(peer_training, job, TRAINING), ours(job, TRAINING)
    assert mine["properties"] == real["properties"] and mine["len"] == real["len"]
    for name in real["dict"]:
        assert mine["dict"][name] == real["dict"][name], name
    assert mine["cmd"] == real["cmd"]
    assert mine["paths"] == real["paths"]
    assert set(mine["env_vars"]) == set(real["env_vars"])
    assert parsed(mine["env_vars"]) == parsed(real["env_vars"])


@pytest.mark.slow
def test_environment_without_a_program_equals_sagemaker_training(peer_training: Path, job: Job) -> None:
    # an SDK v3 job: no sagemaker_program, the entry point comes from sourcecode.json
    job.hyperparameters({"epochs": "3"}, encode=False).channels("code", "sm_drivers").resources()
    (job.base / "input" / "data" / "sm_drivers" / "sourcecode.json").write_text('{"entry_script": "train.py"}')
    job.code = job.base / "input" / "data" / "code"
    real, mine = theirs(peer_training, job, TRAINING), ours(job, TRAINING)
    for name in ("module_name", "user_entry_point", "module_dir", "hyperparameters", "channel_input_dirs"):
        assert mine["dict"][name] == real["dict"][name], name


@pytest.mark.slow
def test_training_env_equals_sagemaker_containers(peer_containers: Path, job: Job) -> None:
    make_job(job)
    real, mine = theirs(peer_containers, job, CONTAINERS_REAL), ours(job, CONTAINERS)
    assert mine["properties"] == real["properties"]
    assert mine["dict"] == real["dict"]
    assert mine["cmd"] == real["cmd"] and mine["paths"] == real["paths"]
    assert parsed(mine["env_vars"]) == parsed(real["env_vars"])


ENCODE = [([[1, 2], [3, 4]], "text/csv"), ([1.5, 2.5], "text/csv"), ([[1, 2], [3, 4]], "application/json"),
          ({"a": [1, 2]}, "application/json"), (7, "application/json")]
DECODE = [("1,2\n3,4\n", "text/csv"), ("1,2,3", "text/csv"), ("a,b\nc,d", "text/csv"), ("[[1, 2], [3, 4]]",
          "application/json"), ("[1.5, 2]", "application/json")]
CODEC_PROBE = """
import json, sys
import numpy as np
{import_line}
cases = json.loads(sys.argv[1])
out = {{"encode": [encoders.encode(np.array(v) if isinstance(v, list) else v, t) for v, t in cases["encode"]],
       "decode": [[str(a.dtype), a.tolist()] for a in (encoders.decode(v, t) for v, t in cases["decode"])],
       "npy": encoders.decode(encoders.encode(np.arange(6).reshape(2, 3), "application/x-npy"),
                              "application/x-npy").tolist()}}
for bad in ("text/plain", "application/x-npz"):
    try:
        encoders.encode([1], bad)
    except Exception as exc:
        out.setdefault("errors", []).append([type(exc).__name__, str(exc)[:40]])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_encoders_equal_sagemaker_containers(peer_containers: Path) -> None:
    pytest.importorskip("numpy")
    cases = json.dumps({"encode": ENCODE, "decode": DECODE})
    real = subprocess.run([str(peer_containers), "-c", CODEC_PROBE.format(
        import_line="from sagemaker_containers import _encoders as encoders"), cases], capture_output=True, text=True,
        timeout=120, env=clean_environ(PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python"))
    assert real.returncode == 0, real.stderr[-2000:]
    mine = subprocess.run([sys.executable, "-c", CODEC_PROBE.format(
        import_line="from toolkit.compat.sagemaker_containers.beta.framework import encoders"), cases],
        capture_output=True, text=True, timeout=120)
    assert mine.returncode == 0, mine.stderr[-2000:]
    assert json.loads(mine.stdout) == json.loads(real.stdout)
