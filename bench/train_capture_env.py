#!/usr/bin/env python3
"""Capture what sagemaker-training 5.1.4 hands a user script, as the golden reference for ours.

Runs the peer's ``train`` (its own venv, built on first use) on fake jobs whose entry point dumps
every SM_* / SAGEMAKER_* / CURRENT_HOST variable, its argv, its working directory and any other
variable the peer added, and writes them, together with the exact job description, to
tests/data/sagemaker_training_env.json.

The jobs run in a private mount namespace (root and ``unshare`` needed): a tmpfs over /opt holds
the job at the real /opt/ml (so paths are SageMaker's own, not a temporary folder's), and
/etc/hosts also maps algo-1 and algo-2 to 127.0.0.1 (the peer waits until every host resolves).
The machine's files are untouched. The code is already in /opt/ml/code, as SageMaker leaves it
when the peer would otherwise download ``sagemaker_submit_directory`` from S3, so no download
happens. The parent environment is fixed (PATH, HOME, LANG), so the output is the same on every
run on one machine; what depends on the machine (CPU count, GPU and Neuron counts, the Python
path) is recorded as found and listed under ``machine_dependent`` for the test to normalise.

Usage: python bench/train_capture_env.py [--out tests/data/sagemaker_training_env.json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import train_peer as tp

OUT = tp.REPO / "tests" / "data" / "sagemaker_training_env.json"
BASE = Path("/opt/ml")
HOSTS = ["algo-1", "algo-2"]

DUMP_SCRIPT = '''\
"""Dump what the training toolkit handed this process."""
import json
import os
import sys

with open(os.path.join(os.environ["SM_MODEL_DIR"], "captured.json"), "w") as fh:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "executable": sys.executable,
               "sys_path0": sys.path[0], "environ": dict(os.environ)}, fh)
'''

REGION = "eu-west-1"
SUBMIT_DIR = "s3://sagemaker-eu-west-1-111122223333/capture-job-2026-11-22/source/sourcedir.tar.gz"

CASES: list[dict[str, Any]] = [
    {
        "name": "two_hosts_instance_groups",
        "about": "SDK v2 job (every hyperparameter value JSON-encoded), two channels (one with '-'), "
                 "hyperparameters of every JSON type, a one-letter key and a key with '-', the usual "
                 "sagemaker_* settings with MPI off; two hosts in two instance groups, this one algo-2.",
        "hyperparameters": tp.sdk_encode({
            "epochs": 10,
            "learning-rate": 0.005,
            "lr": 0.1,
            "use_cuda": False,
            "shuffle": True,
            "greeting": "hello big world",
            "quote": "it's a \"test\"",
            "layers": [64, 32, 16],
            "optimizer": {"name": "adam", "beta1": 0.9},
            "a": 1,
            "batch-size": 32,
            "tag": "1.0",
            "sagemaker_program": "dump_env.py",
            "sagemaker_submit_directory": SUBMIT_DIR,
            "sagemaker_region": REGION,
            "sagemaker_job_name": "capture-job-2026-11-22",
            "sagemaker_container_log_level": 20,
            "sagemaker_mpi_enabled": False,
        }),
        "input_data_config": {
            "training": {"ContentType": "text/csv", "TrainingInputMode": "File",
                         "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
            "eval-set": {"ContentType": "application/x-parquet", "TrainingInputMode": "File",
                         "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"},
        },
        "resource_config": {
            "current_host": "algo-2",
            "current_instance_type": "ml.c5.xlarge",
            "current_group_name": "cpu-group",
            "hosts": ["algo-1", "algo-2"],
            "instance_groups": [
                {"instance_group_name": "cpu-group", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2"]},
                {"instance_group_name": "mem-group", "instance_type": "ml.r5.large", "hosts": ["algo-1"]},
            ],
            "network_interface_name": "eth0",
        },
    },
    {
        "name": "one_host_defaults",
        "about": "Smallest job: one host, one channel, only sagemaker_program set (no submit directory, "
                 "region, job name or log level: the peer's defaults show), and one hyperparameter "
                 "written raw, not JSON-encoded (as SDK v3 writes strings).",
        "hyperparameters": {
            **tp.sdk_encode({"epochs": 1, "sagemaker_program": "dump_env.py"}),
            "mode": "fast and small",
        },
        "input_data_config": {
            "train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                      "RecordWrapperType": "None"},
        },
        "resource_config": {
            "current_host": "algo-1",
            "current_instance_type": "ml.m5.large",
            "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1"],
            "instance_groups": [
                {"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large", "hosts": ["algo-1"]},
            ],
            "network_interface_name": "eth0",
        },
    },
]


def parent_environ(peer_bin: Path) -> dict[str, str]:
    """A fixed environment for the peer, so nothing of this machine's shell leaks in."""
    return {
        "PATH": f"{peer_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }


def is_contract(name: str) -> bool:
    return name.startswith(("SM_", "SAGEMAKER_")) or name == "CURRENT_HOST"


def capture(case: dict[str, Any], peer_bin: Path) -> dict[str, Any]:
    tp.write_job(BASE, case["hyperparameters"], case["input_data_config"], case["resource_config"])
    code = BASE / "code"
    code.mkdir()
    (code / "dump_env.py").write_text(DUMP_SCRIPT)
    environ = parent_environ(peer_bin)
    proc = subprocess.run([str(peer_bin / "train")], env=environ, capture_output=True, text=True, timeout=120)
    dumped = BASE / "model" / "captured.json"
    if proc.returncode != 0 or not dumped.is_file():
        sys.exit(f"train_capture_env: the peer failed on {case['name']} (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    got = json.loads(dumped.read_text())
    child = got.pop("environ")
    variables = {k: child[k] for k in sorted(child) if is_contract(k)}
    others = {k: child[k] for k in sorted(child) if not is_contract(k) and environ.get(k) != child[k]}
    return {
        "name": case["name"],
        "about": case["about"],
        "job": {
            "base_dir": str(BASE),
            "environ": environ,
            "code_files": {"dump_env.py": DUMP_SCRIPT},
            "hyperparameters.json": case["hyperparameters"],
            "inputdataconfig.json": case["input_data_config"],
            "resourceconfig.json": case["resource_config"],
        },
        "exit_code": proc.returncode,
        "success_file": (BASE / "output" / "success").is_file(),
        "argv": got["argv"],
        "cwd": got["cwd"],
        "executable": got["executable"],
        "sys_path0": got["sys_path0"],
        "variables": variables,
        "other_variables_added": others,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--workdir", type=Path, default=tp.DEFAULT_WORKDIR)
    ap.add_argument("--peer-python", help="Python to build the peer's venv from (default: pyenv 3.11, 3.12)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    peer_bin = tp.ensure_peer_venv(work, args.peer_python)
    if os.environ.get(tp.NAMESPACE_MARK) != "1":
        if not tp.can_unshare():
            sys.exit("train_capture_env: needs root and unshare (it mounts a tmpfs over /opt in a private "
                     "mount namespace so the job sits at /opt/ml)")
        tp.reexec_in_namespace(work, HOSTS, extra_mounts="mount -t tmpfs tmpfs /opt && mkdir -p /opt/ml &&")
    if not all(tp.resolves(h) for h in HOSTS) or any(BASE.iterdir()):
        sys.exit("train_capture_env: the private namespace is not as expected (hosts or /opt/ml)")

    peer_py = str(peer_bin / "python")
    results = [capture(case, peer_bin) for case in CASES]
    version_of = ("import importlib.metadata as m; print(m.version('sagemaker-training'))")
    doc = {
        "about": "What sagemaker-training hands the user's script, captured by bench/train_capture_env.py "
                 "(regenerate with: sudo python bench/train_capture_env.py). Golden reference for the "
                 "variables and argv of our `train`.",
        "peer": {
            "distribution": "sagemaker-training",
            "version": subprocess.run([peer_py, "-c", version_of], capture_output=True, text=True).stdout.strip(),
            "python": tp.python_version(peer_py),
        },
        "machine_dependent": {
            "why": "values the peer computes from the machine it runs on; normalise them before comparing",
            "variables": ["SM_NUM_CPUS", "SM_NUM_GPUS", "SM_NUM_NEURONS"],
            "inside_json_variables": {"SM_TRAINING_ENV": ["num_cpus", "num_gpus", "num_neurons"]},
            "also": ["executable (the peer venv's python)", "PATH in job.environ and other_variables_added"],
            "captured_with": {"num_cpus": os.cpu_count(), "nvidia_smi": shutil.which("nvidia-smi") is not None,
                              "neuron_ls": shutil.which("neuron-ls") is not None},
        },
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tp.log(f"wrote {args.out} ({len(results)} cases, "
           f"{sum(len(r['variables']) for r in results)} variables)")


if __name__ == "__main__":
    main()
