#!/usr/bin/env python3
"""The local emulator's costs, side by side with the peers, in one run:

A. a trivial training job end to end (source packaging, config files, ``train``, model and output
   tarballs, describe file) with ``toolkit local train`` in in-process mode, vs the same script
   run directly with ``python train.py``, vs the toolkit's ``train`` alone on a ready /opt/ml;
B. a File channel of 1,000 objects of 1 MiB (1.05 GB) downloaded from a moto server by
   ``toolkit local train`` vs ``aws s3 sync`` of the same prefix (awscli v1 in its own venv).

Every run is a fresh process, the methods interleaved; medians are printed and, with --write,
replace the ``## Local emulator`` section of docs/benchmarks.md.

  python bench/bench_local.py [--reps-job 10] [--reps-data 3] [--aws /path/to/aws] [--write]

Without --aws, awscli is installed into <work>/awscli-venv with pip (once).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchdoc import write_section

from toolkit.testing import clean_environ, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
BUCKET = "bench-local"
OBJECTS = 1000
OBJECT_SIZE = 1024 * 1024
TRIVIAL = """import os
open(os.path.join(os.environ.get("SM_MODEL_DIR", "."), "model.txt"), "w").write("trained")
"""


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
    return wall, proc.stderr


# -- A. a trivial job ----------------------------------------------------------------------------


def lay_out_train(base: Path, src: Path) -> None:
    config = base / "input" / "config"
    config.mkdir(parents=True)
    hps = {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(src)}
    (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))


def bench_job(work: Path, reps: int) -> dict[str, list[float]]:
    src = work / "src"
    src.mkdir(parents=True)
    (src / "train.py").write_text(TRIVIAL)
    data = work / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    times: dict[str, list[float]] = {"direct": [], "train": [], "local": []}
    for rep in range(reps):
        model = work / f"direct-{rep}"
        model.mkdir()
        times["direct"].append(timed([sys.executable, "train.py"], clean_environ(SM_MODEL_DIR=str(model)), src)[0])
        base = work / f"train-{rep}" / "opt" / "ml"
        lay_out_train(base, src)
        times["train"].append(timed([str(BIN / "train")], clean_environ(SAGEMAKER_BASE_DIR=str(base)))[0])
        times["local"].append(timed(
            [str(BIN / "toolkit"), "local", "train", "--job-name", f"trivial-{rep}", "--source-dir", str(src),
             "--entry-point", "train.py", "--channel", f"train={data}", "--output-path", str(work / "out"),
             "--workdir", str(work / "jobs")], clean_environ())[0])
        print(json.dumps({k: round(v[-1], 3) for k, v in times.items()}), flush=True)
    return times


# -- B. a 1 GB channel ---------------------------------------------------------------------------


def wait_for(endpoint: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def awscli(work: Path, given: str | None) -> str:
    if given:
        return given
    venv = work.parent / "awscli-venv"
    aws = venv / "bin" / "aws"
    if not aws.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return str(aws)


def bench_data(work: Path, reps: int, aws: str) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = clean_environ(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                    AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_CONFIG_FILE="/dev/null",
                    AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    log = open(work / "moto.log", "ab")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    walls: dict[str, list[float]] = {"local": [], "aws": []}
    transfer: dict[str, list[float]] = {"local": []}
    version = subprocess.run([aws, "--version"], capture_output=True, text=True).stdout.strip().split()[0]
    try:
        wait_for(endpoint)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        rng = os.urandom(OBJECT_SIZE + OBJECTS)

        def put(i: int) -> None:
            client.put_object(Bucket=BUCKET, Key=f"big/part-{i:04d}", Body=rng[i:i + OBJECT_SIZE])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(OBJECTS)))
        src = work / "src"
        src.mkdir(exist_ok=True)
        (src / "train.py").write_text(TRIVIAL)
        for rep in range(reps):
            dest = work / "sync"
            wall, _ = timed([aws, "s3", "sync", "--only-show-errors", f"s3://{BUCKET}/big/", str(dest)], env)
            assert len(list(dest.iterdir())) == OBJECTS
            walls["aws"].append(wall)
            shutil.rmtree(dest)
            wall, stderr = timed(
                [str(BIN / "toolkit"), "local", "train", "--job-name", f"big-{rep}", "--source-dir", str(src),
                 "--entry-point", "train.py", "--channel", f"train=s3://{BUCKET}/big/", "--output-path",
                 str(work / "out"), "--workdir", str(work / "jobs")], env)
            match = re.search(r"input algo-1 train: (\d+) file\(s\), .* in ([\d.]+) s", stderr)
            assert match and int(match.group(1)) == OBJECTS, stderr[-2000:]
            walls["local"].append(wall)
            transfer["local"].append(float(match.group(2)))
            shutil.rmtree(work / "jobs")
            print(json.dumps({"aws": round(walls["aws"][-1], 2), "local": round(wall, 2),
                              "local_download": transfer["local"][-1]}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    return walls, transfer, version


def report(job: dict[str, list[float]], walls: dict[str, list[float]], transfer: dict[str, list[float]],
           aws_version: str, reps_job: int, reps_data: int) -> str:
    from importlib.metadata import version

    med = {k: statistics.median(v) for k, v in job.items()}
    gb = OBJECTS * OBJECT_SIZE / 1e9
    aws_med = statistics.median(walls["aws"])
    local_med = statistics.median(walls["local"])
    dl_med = statistics.median(transfer["local"])
    return "\n".join([
        "## Local emulator",
        "",
        f"`python bench/bench_local.py --reps-job {reps_job} --reps-data {reps_data}` ({time.strftime('%Y-%m-%d')}, "
        f"2-core VM, Python {sys.version.split()[0]}, boto3 {version('boto3')}, moto {version('moto')} server on "
        f"127.0.0.1 in its own process, {aws_version}). Wall time of fresh processes, methods interleaved, medians.",
        "",
        "A trivial job (a script that writes one file):",
        "",
        "| method | median s | beyond the script alone |",
        "| --- | ---: | ---: |",
        f"| `python train.py` (the script alone) | {med['direct']:.3f} | - |",
        f"| `train` on a ready /opt/ml (the container's part) | {med['train']:.3f} | "
        f"{med['train'] - med['direct']:+.3f} |",
        f"| `toolkit local train` end to end (package source, configs, local channel, `train`, model and output "
        f"tarballs, describe file) | {med['local']:.3f} | {med['local'] - med['direct']:+.3f} |",
        "",
        f"A File channel of {OBJECTS:,} objects of 1 MiB ({gb:.2f} GB) from moto:",
        "",
        "| method | median s | GB/s |",
        "| --- | ---: | ---: |",
        f"| `aws s3 sync` of the prefix | {aws_med:.2f} | {gb / aws_med:.2f} |",
        f"| `toolkit local train` download phase (16 parallel GETs) | {dl_med:.2f} | {gb / dl_med:.2f} |",
        f"| `toolkit local train` whole job (download, trivial script, upload) | {local_med:.2f} | - |",
        "",
        f"Download phase vs `aws s3 sync`: {dl_med / aws_med:.2f}x the time; whole job vs `aws s3 sync`: "
        f"{local_med / aws_med:.2f}x.",
        "",
        f"The emulator's own share of the trivial job is the difference of the last two rows of the first table "
        f"({med['local'] - med['train']:.3f} s: its start-up, packaging, config files, tarballs, describe file); "
        f"the rest is `train`'s. The download phase starts after the listing; the whole-job figure also "
        f"includes listing 1,000 objects from moto (which `aws s3 sync` does too), `train` and the tarballs. "
        f"moto and the clients share the 2 cores, so these figures drift by 10-20 % between runs.",
        "",
    ])



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps-job", type=int, default=10)
    parser.add_argument("--reps-data", type=int, default=3)
    parser.add_argument("--aws", help="an aws executable (default: installed into a venv under --work)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench-local"))
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args()
    work = Path(args.work) / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    aws = awscli(work, args.aws)
    job = bench_job(work / "job", args.reps_job)
    walls, transfer, aws_version = bench_data(work / "data", args.reps_data, aws) if args.reps_data else ({}, {}, "")
    table = report(job, walls, transfer, aws_version, args.reps_job, args.reps_data)
    print(table)
    if args.write:
        write_section(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
