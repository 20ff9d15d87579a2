#!/usr/bin/env python3
"""Fetching a sourcedir.tar.gz from S3: the toolkit's S3 fetcher vs the official toolkit's path
(boto3 ``download_file`` to a file, then ``tarfile`` extraction) vs the download alone.

Self-contained: starts its own ``moto_server`` on 127.0.0.1 (a separate process, so the server
does not share a GIL with the client), builds two fixtures once (deterministic) under --work,
uploads them, then runs every method --reps times, interleaved, each in a fresh process, and
prints the medians. With --write, the results replace the ``## Fetching code`` section of
docs/benchmarks.md.

  python bench/bench_fetch.py [--reps 5] [--write]

Fixtures: ``big``: one 200 MiB file of random bytes (plus train.py); ``small``: 5,000 files of
1-26 KiB, two thirds random bytes and one third source-like text (~50 MB .tar.gz).

moto serves every ranged GET by materialising the whole object and slicing it, so
``download_file``'s parallel ranged GETs are much slower against moto than one GET (real S3 is
the other way round). The single-GET variants (``*_1get``) show what moto can serve.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

from benchdoc import write_section

from toolkit.testing import clean_environ, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUCKET = "bench-fetch"
METHODS = {
    "toolkit": "toolkit S3 fetcher (streams into the extractor)",
    "official": "boto3 download_file + tarfile extractall (the official toolkit's path)",
    "official_1get": "as official, download_file with one GET (no ranged GETs)",
    "download": "download only: boto3 download_file to a file",
    "download_1get": "download only: one GET streamed to a file",
}


# -- fixtures --------------------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
    tar.addfile(info, io.BytesIO(data))


def make_fixtures(work: Path) -> dict[str, Path]:
    rng = random.Random(42)
    out = {"big": work / "big" / "sourcedir.tar.gz", "small": work / "small" / "sourcedir.tar.gz"}
    train = b"print('hello from train.py')\n"
    if not out["big"].exists():
        out["big"].parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out["big"], "w:gz", compresslevel=6) as tar:
            _add(tar, "train.py", train)
            _add(tar, "model/weights.bin", rng.randbytes(200 * 1024 * 1024))
    if not out["small"].exists():
        out["small"].parent.mkdir(parents=True, exist_ok=True)
        words = b"def class return import self model data tensor batch epoch loss for in range if else".split()
        with tarfile.open(out["small"], "w:gz", compresslevel=6) as tar:
            _add(tar, "train.py", train)
            for i in range(4999):
                size = rng.randint(1024, 26 * 1024)
                folder = f"pkg{rng.randint(0, 19):02d}/sub{rng.randint(0, 9):02d}"
                if rng.random() < 2 / 3:
                    _add(tar, f"{folder}/blob_{i:05d}.bin", rng.randbytes(size))
                else:
                    text = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
                    _add(tar, f"{folder}/mod_{i:05d}.py", text)
    return out


# -- one measured fetch, in a child process ---------------------------------------------------


def child(method: str, uri: str, dest: str) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    from toolkit.builtin import s3 as s3_fetcher

    bucket, key = uri[len("s3://"):].split("/", 1)
    tmpfile = dest + ".download"
    env = dict(os.environ)
    started = time.perf_counter()
    if method == "toolkit":
        s3_fetcher.toolkit_fetch_code(uri, Path(dest), env)
    else:
        client = boto3.client("s3")
        if method in ("official", "download"):
            client.download_file(bucket, key, tmpfile)
        elif method in ("official_1get",):
            client.download_file(bucket, key, tmpfile, Config=TransferConfig(multipart_threshold=2**40))
        elif method == "download_1get":
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with open(tmpfile, "wb") as out:
                for chunk in body.iter_chunks(1024 * 1024):
                    out.write(chunk)
        if method.startswith("official"):
            with tarfile.open(tmpfile, "r:gz") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, filter="data")
                else:  # pragma: no cover - Python without the extraction filters
                    tar.extractall(dest)
    seconds = time.perf_counter() - started
    files = sum(len(names) for _, _, names in os.walk(dest)) if os.path.isdir(dest) else 0
    print(json.dumps({"seconds": seconds, "files": files}))


# -- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--work", default="/tmp/toolkit-bench-fetch")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--fixtures", default="big,small")
    parser.add_argument("--dest-roots", default="",
                        help="comma-separated folders to extract into (default: WORK/dest, on disk); "
                             "add /dev/shm to see the cost without the disk")
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    parser.add_argument("--from-log", help="re-render the report from the JSON lines of an earlier run's output")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "URI", "DEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops moto
    work = Path(args.work)
    started = time.time()
    fixtures = make_fixtures(work)
    if args.from_log:
        results = [json.loads(ln) for ln in Path(args.from_log).read_text().splitlines() if ln.startswith("{")]
        names = sorted({r["fixture"] for r in results}, key=args.fixtures.split(",").index)
        methods = [m for m in METHODS if any(r["method"] == m for r in results)]
        roots = list(dict.fromkeys(Path(r["where"]) for r in results))
        table = report(results, fixtures, names, methods, 1 + max(r["rep"] for r in results), roots)
        print(table)
        if args.write:
            write_section(table)
        return
    print(f"fixtures ready ({time.time() - started:.1f} s)", flush=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = clean_environ(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                        AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_CONFIG_FILE="/dev/null",
                        AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    moto_bin = Path(sys.executable).parent / "moto_server"
    log = open(work / "moto.log", "ab")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    results: list[dict] = []
    names = [f for f in args.fixtures.split(",") if f]
    roots = [Path(r) for r in args.dest_roots.split(",") if r] or [work / "dest"]
    methods = [m for m in args.methods.split(",") if m]
    try:
        _wait(endpoint)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        for name in names:
            client.upload_file(str(fixtures[name]), BUCKET, f"{name}/sourcedir.tar.gz")
        print(f"uploaded ({time.time() - started:.1f} s)", flush=True)
        for rep in range(args.reps):
            for root, name, method in [(r, n, m) for r in roots for n in names for m in methods]:
                dest = root / "toolkit-bench-dest" / f"{name}-{method}-{rep}"
                shutil.rmtree(dest.parent, ignore_errors=True)
                dest.parent.mkdir(parents=True)
                uri = f"s3://{BUCKET}/{name}/sourcedir.tar.gz"
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "--child", method, uri, str(dest)], env=env,
                                      capture_output=True, text=True, timeout=900)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"{method} failed: {proc.stderr[-2000:]}")
                record = json.loads(proc.stdout.strip().splitlines()[-1])
                record.update(fixture=name, method=method, rep=rep, process_seconds=wall, where=str(root))
                results.append(record)
                print(json.dumps(record), flush=True)
                shutil.rmtree(dest.parent, ignore_errors=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    table = report(results, fixtures, names, methods, args.reps, roots)
    print(table)
    if args.write:
        write_section(table)


def report(results: list[dict], fixtures: dict[str, Path], names: list[str], methods: list[str], reps: int,
           roots: list[Path]) -> str:
    where = ",".join(str(r) for r in roots)
    lines = [
        "## Fetching code",
        "",
        f"`python bench/bench_fetch.py --reps {reps} --dest-roots {where}` ({time.strftime('%Y-%m-%d')}, "
        f"2-core VM shared with other work, Python {sys.version.split()[0]}, boto3 {_version('boto3')}, moto "
        f"{_version('moto')} server on 127.0.0.1 in its own process). Each fetch runs in a fresh process; the "
        f"time is measured inside it from the start of the fetch (client creation included, imports excluded) "
        f"to the last file written. Medians of {reps} runs, every method, fixture and destination interleaved "
        f"in each round; MB/s is the .tar.gz size over that time.",
        "",
    ]
    for root in roots:
        lines += [
            f"Extracted into `{root}`:",
            "",
            "| fixture | method | median s | MB/s | vs official | vs download |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for name in names:
            size = fixtures[name].stat().st_size
            medians = {m: statistics.median(r["seconds"] for r in results
                                            if r["fixture"] == name and r["method"] == m and r["where"] == str(root))
                       for m in methods}
            fastest_download = min(medians.get(m, float("inf")) for m in ("download", "download_1get"))
            for method in methods:
                value = medians[method]
                vs_official = f"{value / medians['official']:.2f}x" if "official" in medians else ""
                vs_download = f"{value / fastest_download:.2f}x" if fastest_download != float("inf") else ""
                lines.append(f"| {name} ({size / 1e6:.0f} MB) | {method}: {METHODS[method]} | {value:.2f} | "
                             f"{size / 1e6 / value:.0f} | {vs_official} | {vs_download} |")
        lines.append("")
    lines += ["Targets (issue 3): at least as fast as the official path (toolkit / official <= 1), and within 1.5x "
              "of the download alone (toolkit / fastest download <= 1.5):", ""]
    for root in roots:
        for name in names:
            def med(method: str, name: str = name, root: Path = root) -> float:
                return statistics.median(r["seconds"] for r in results
                                         if r["fixture"] == name and r["method"] == method and r["where"] == str(root))
            if not {"toolkit", "official", "download_1get"} <= set(methods):
                continue
            vs_official = med("toolkit") / med("official")
            fastest = min(med(m) for m in ("download", "download_1get") if m in methods)
            vs_download = med("toolkit") / fastest
            lines.append(f"- `{name}` into `{root}`: {vs_official:.2f}x the official path "
                         f"({'met' if vs_official <= 1 else 'NOT met'}), {vs_download:.2f}x the download alone "
                         f"({'met' if vs_download <= 1.5 else 'NOT met'}).")
    lines += [
        "",
        "`big`: one 200 MiB random file (incompressible); `small`: 5,000 files of 1-26 KiB. \"vs download\" "
        "compares with the faster of the two download-only methods. moto answers each ranged GET by "
        "materialising the whole object, so `download_file`'s parallel ranged GETs (`official`, `download`) are "
        "slow here and fast on real S3; the `_1get` rows use one GET, which is what the toolkit's fetcher does.",
        "",
        "Where the download-alone target is missed, the time goes to writing files, not to the transfer: "
        "extracting the 5,000-file archive from a local file into tmpfs takes about 1 s of CPU in one process on "
        "this VM (Python's tarfile header parsing, gzip, one open/write/close per file, with the writes on two "
        "threads), against 0.2-0.3 s for the download, and the shared disk adds seconds with a large spread. The "
        "fetcher already overlaps the download with extraction (a read-ahead thread) and never writes the "
        "archive itself to disk; going further would need a tar reader in C. Numbers drift 2x between rounds "
        "on this shared machine: compare rows of one run only.",
        "",
    ]
    return "\n".join(lines)



def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _wait(endpoint: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    main()
