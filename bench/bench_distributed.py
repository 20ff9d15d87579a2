#!/usr/bin/env python3
"""Multi-host jobs: how long a 2-host job takes, and how long the hosts linger after the work is
done, for our launchers and sagemaker-training's MPI launcher, side by side.

Each round (interleaved, N rounds) runs a 2-host x 2-rank job on hosts algo-1 and algo-2, each in
its own network, UTS and mount namespace (root and ``ip netns`` needed), each with its own /opt/ml:

  ours mpi        our ``train`` + toolkit-mpi: mpirun + mpi4py allreduce
  ours torchrun   our ``train`` + toolkit-torchrun: torchrun + gloo all_reduce
  peer mpi        sagemaker-training 5.1.4 ``train`` (the venv bench_train.py builds) with
                  sagemaker_mpi_enabled: its mpirun + the same mpi4py allreduce

The script's rank 0 writes the time its work ended; we report, per launcher, the job's wall time
(first host started -> last host exited) and the tail (work ended -> each host exited). Results
go to docs/benchmarks.md under ``## Multi-host launchers`` (``--no-docs`` to skip).

Usage: python bench/bench_distributed.py [-n 3] [--no-peer] [--no-docs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchdoc import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from plugins.conftest import Cluster, netns_unavailable  # noqa: E402
from toolkit.testing import clean_environ  # noqa: E402

PEER = Path(tempfile.gettempdir()) / "sagemaker-toolkit-bench" / "peer-sagemaker-training-5.1.4-py3.11"
OURS_TRAIN = Path(sys.executable).parent / "train"

MPI_JOB = """
import json, os, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.rank + 1)
if comm.rank == 0:
    with open(os.path.join(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), "done.json"), "w") as fh:
        json.dump({"sum": total, "time": time.time()}, fh)
"""

TORCH_JOB = """
import json, os, time
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
if dist.get_rank() == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "done.json"), "w") as fh:
        json.dump({"sum": value.item(), "time": time.time()}, fh)
dist.destroy_process_group()
"""


def run_round(kind: str, work: Path, timeout: float = 300) -> dict:
    cluster = Cluster(work)
    cluster.up()
    try:
        script = TORCH_JOB if kind == "ours torchrun" else MPI_JOB
        for job in cluster.jobs.values():
            job.script("train.py", script)
            hps = {"sagemaker_program": "train.py", "sagemaker_mpi_num_of_processes_per_host": 2}
            hps["sagemaker_torch_distributed_enabled" if kind == "ours torchrun" else "sagemaker_mpi_enabled"] = True
            if kind == "peer mpi":
                hps["sagemaker_submit_directory"] = "/opt/ml/code"
            job.hyperparameters(hps)
            (job.config / "inputdataconfig.json").write_text("{}")
            job.model.mkdir(parents=True, exist_ok=True)
            (job.base / "output").mkdir(parents=True, exist_ok=True)
        ended: dict[str, float] = {}
        started = time.time()
        procs = {}
        for host in cluster.hosts:
            procs[host] = start(kind, cluster, host, work)

        def wait(host: str) -> None:
            try:
                procs[host].wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                procs[host].kill()
                procs[host].wait()
            ended[host] = time.time()

        threads = [threading.Thread(target=wait, args=(h,)) for h in cluster.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = {h: p.returncode for h, p in procs.items()}
        done_file = cluster.jobs["algo-1"].model / "done.json"
        if not done_file.exists():
            raise RuntimeError(f"{kind}: the job did not finish its work ({codes}):\n{cluster.output()[-3000:]}")
        done = json.loads(done_file.read_text())
        return {"wall": max(ended.values()) - started, "codes": codes,
                "tail": {h: t - done["time"] for h, t in ended.items()}, "sum": done["sum"]}
    finally:
        cluster.down()


def start(kind: str, cluster: Cluster, host: str, work: Path) -> subprocess.Popen:
    if kind.startswith("ours"):
        extra = {"TOOLKIT_SSH_DIR": str(work / "ssh"), "TOOLKIT_MPI_STATE_DIR": str(work / "state")}
        return cluster.start(host, **extra)
    # the peer reads /opt/ml, ~/.ssh and writes /etc/environment: give each host its own in a
    # private mount namespace (its /opt/ml is the host's job folder; ~/.ssh is shared)
    ssh_dir = work / "peer-ssh"
    if not (ssh_dir / "id_rsa").exists():
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-N", "", "-f", str(ssh_dir / "id_rsa")], check=True)
        shutil.copy(ssh_dir / "id_rsa.pub", ssh_dir / "authorized_keys")
        (ssh_dir / "config").write_text("Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
    etc_env = work / f"environment.{host}"
    etc_env.write_text("")
    Path("/opt/ml").mkdir(parents=True, exist_ok=True)
    Path("/root/.ssh").mkdir(mode=0o700, exist_ok=True)
    inner = (f'hostname {host} && mount --bind {cluster.jobs[host].base} /opt/ml && '
             f'mount --bind {ssh_dir} /root/.ssh && mount --bind {etc_env} /etc/environment && '
             f'exec {PEER}/bin/train')
    env = clean_environ(PATH=f"{PEER}/bin:" + os.environ.get("PATH", ""), PYTHONUNBUFFERED="1")
    out = open(cluster.logs / f"{host}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(["ip", "netns", "exec", cluster.ns[host], "unshare", "--mount", "--uts",
                             "--propagation", "private", "--", "sh", "-c", inner],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.procs[host] = proc
    return proc


def summary(results: list[dict]) -> dict:
    walls = [r["wall"] for r in results]
    tails = {h: [r["tail"][h] for r in results] for h in ("algo-1", "algo-2")}
    return {"wall": statistics.median(walls), "tail": {h: statistics.median(v) for h, v in tails.items()},
            "codes": results[-1]["codes"], "n": len(results)}


def write_docs(kinds: dict[str, dict], args: argparse.Namespace, load: tuple[float, float]) -> None:
    lines = [
        "## Multi-host launchers",
        "",
        "`python bench/bench_distributed.py` (issue 8). A 2-host x 2-rank job (allreduce, rank 0 writes the time its",
        "work ended), each host in its own network, UTS and mount namespace on this one machine, its own /opt/ml;",
        f"{args.n} interleaved rounds, medians. *Tail*: from the end of the work to the host's exit.",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"Linux {platform.release()}; Open MPI {mpi_version()}",
        f"- Load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f} (shared machine)",
        "- ours mpi / ours torchrun: our `train` with toolkit-mpi / toolkit-torchrun; peer mpi: sagemaker-training",
        "  5.1.4 `train` with `sagemaker_mpi_enabled` (its own venv, as bench_train.py builds it)",
        "",
        "| launcher | job wall time | tail on algo-1 (master) | tail on algo-2 | exit codes (algo-1, algo-2) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for kind, s in kinds.items():
        lines.append(f"| {kind} | {s['wall']:.1f} s | {s['tail']['algo-1']:.1f} s | {s['tail']['algo-2']:.1f} s "
                     f"| {s['codes']['algo-1']}, {s['codes']['algo-2']} |")
    lines += [
        "",
        "The peer's tails come from fixed waits in sagemaker_training/mpi.py: the master sleeps 30 s after",
        "writing the status files, each worker sleeps 30 s after mpirun's daemon has gone and then looks for",
        "the status file (every 30 s). Ours have none: the master reports the exit code over SSH as soon",
        "as mpirun ends, the worker polls for it; torchrun hosts end when the coordinator has every result.",
        "Read in the peer's source, not measured here: its status file is an empty `touch`, so its workers",
        "exit 0 whatever the job's exit code; ours exit with the job's code (tested).",
        "",
    ]
    write_section("\n".join(lines))


def mpi_version() -> str:
    out = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+\.\d+\.\d+)", out)
    return found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    why = netns_unavailable()
    if why:
        print(f"bench_distributed: {why}", file=sys.stderr)
        return 2
    kinds = ["ours mpi", "ours torchrun"]
    if not args.no_peer:
        if (PEER / "bin" / "train").exists():
            kinds.append("peer mpi")
            has = subprocess.run([str(PEER / "bin" / "python"), "-c", "import mpi4py"], capture_output=True)
            if has.returncode != 0:  # the job script needs it on the peer's Python too
                subprocess.run([str(PEER / "bin" / "pip"), "install", "-q", "mpi4py"], check=True)
        else:
            print(f"no peer venv at {PEER} (python bench/bench_train.py builds it): peer skipped", file=sys.stderr)
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        for i in range(args.n):
            for kind in kinds:
                work = Path(tmp) / f"{kind.replace(' ', '-')}-{i}"
                work.mkdir()
                result = run_round(kind, work)
                print(f"round {i + 1} {kind}: wall {result['wall']:.1f} s, tails "
                      + ", ".join(f"{h} {t:.1f} s" for h, t in result["tail"].items())
                      + f", codes {result['codes']}", flush=True)
                results[kind].append(result)
    summaries = {k: summary(v) for k, v in results.items()}
    print(json.dumps(summaries, indent=2))
    if not args.no_docs:
        write_docs(summaries, args, (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
