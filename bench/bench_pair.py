#!/usr/bin/env python3
"""What one setting costs `serve` on the echo benchmark, measured in pairs; results into docs/benchmarks.md.

Why pairs: on these shared 2-CPU machines the same `serve` answers anywhere from 7,000 to 11,000
requests a second from one minute to the next, so a cost of a few percent cannot be read from runs
made one after the other (bench_serving.py's figures for the metrics' cost ranged from 5.8 % to
12.9 %). Here both sides run at once: two `serve` processes of one worker each, both pinned to CPU 0,
so they share one CPU and whatever slows it down, each loaded by its own `wrk -t1 -c8` pinned to
CPU 1. The kernel gives the two workers equal CPU time, so the ratio of their answers is the inverse
ratio of their CPU per answer. Each round starts both servers afresh, and the sides swap ports and
start order from one round to the next.

Pairs (B against A; the cost is 1 - B/A, the share of throughput the setting takes):
  same        `serve` against itself: the method's own spread (should be ~0)
  metrics     TOOLKIT_METRICS_PORT set, against the default (off)
  access-log  the default (TOOLKIT_ACCESS_LOG on), against TOOLKIT_ACCESS_LOG=false
  baseline    --serve against --baseline (two installs, e.g. a change against main)

    python3 bench/bench_pair.py                          # ~6 min; writes docs/benchmarks.md ## Paired costs
    python3 bench/bench_pair.py --pairs metrics --rounds 4 --no-docs
    python3 bench/bench_pair.py --pairs baseline --serve NEW/bin/serve --baseline OLD/bin/serve --no-docs

Needs wrk and taskset; uses bench_serving.py's venv and echo model ($TOOLKIT_BENCH_DIR).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench_serving as bs
from benchdoc import write_section

PORTS = (bs.PORT + 20, bs.PORT + 21)
PAIRS = {  # name -> (A's variables, B's variables)
    "same": ({}, {}),
    "metrics": ({}, {"TOOLKIT_METRICS_PORT": "@METRICS@"}),
    "access-log": ({"TOOLKIT_ACCESS_LOG": "false"}, {}),
    "baseline": ({}, {}),
}
LUA = ('wrk.method = "POST"\nwrk.body = \'' + bs.BODY + '\'\nwrk.headers["Content-Type"] = "application/json"\n')


def start(serve: Path, files: Path, port: int, variables: dict) -> subprocess.Popen:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(files / "optml"), "SAGEMAKER_BIND_TO_PORT": str(port),
           "TOOLKIT_BIND_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
           **{k: v.replace("@METRICS@", str(port + 100)) for k, v in variables.items()}}
    return subprocess.Popen(["taskset", "-c", "0", str(serve)], cwd=files, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ready(port: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    sys.exit(f"serve on port {port} did not answer /ping")


def setup(serve: Path | None) -> tuple:
    """(the echo model's files, the `serve` to measure): this checkout installed in bench_serving.py's venv."""
    files = bs.WORK / "files"
    inference = files / "optml" / "model" / "code" / "inference.py"
    inference.parent.mkdir(parents=True, exist_ok=True)
    inference.write_text(bs.INFERENCE)
    if serve is None:
        tk = bs.venv("toolkit", sys.executable, [str(bs.ROOT), "numpy"])
        bs.run([str(tk / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps",
                "--force-reinstall", str(bs.ROOT)])
        serve = tk / "bin" / "serve"
    return files, serve


def load(ports: tuple, seconds: int, script: Path) -> list:
    """Requests answered on each port, both loaded at once by their own wrk on CPU 1."""
    procs = [subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{seconds}", "-s", str(script),
                               f"http://127.0.0.1:{port}/invocations"], stdout=subprocess.PIPE, text=True)
             for port in ports]
    counts = []
    for proc in procs:
        out = proc.communicate()[0]
        found = re.search(r"(\d+) requests in", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", out)
        if not found or errors:
            sys.exit(f"wrk failed:\n{out}")
        counts.append(int(found.group(1)))
    return counts


def rnd(sides: list, number: int, files: Path, seconds: int, script: Path) -> dict:
    """One round: both sides started (order and ports swapped every other round), warmed, measured."""
    order = sides if number % 2 == 0 else sides[::-1]
    procs = {name: start(serve, files, PORTS[i], variables) for i, (name, serve, variables) in enumerate(order)}
    ports = {name: PORTS[i] for i, (name, _, _) in enumerate(order)}
    try:
        for port in ports.values():
            ready(port)
        load(tuple(ports.values()), 2, script)
        before = {name: bs.session_cpu(proc.pid) for name, proc in procs.items()}
        counts = dict(zip(ports, load(tuple(ports.values()), seconds, script)))
        cpu = {name: (bs.session_cpu(proc.pid) - before[name]) * 1e6 / counts[name] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            bs.stop(proc)
    return {"A": counts["A"], "B": counts["B"], "cpu_A": cpu["A"], "cpu_B": cpu["B"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="same,metrics,access-log")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--serve", type=Path, help="the `serve` to measure (default: this checkout, installed)")
    parser.add_argument("--baseline", type=Path, help="the `serve` the baseline pair compares --serve with")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {missing}: apt-get install wrk util-linux")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs: one for the two servers, one for the two wrk")
    names = args.pairs.split(",")
    if "baseline" in names and args.baseline is None:
        sys.exit("--pairs baseline needs --baseline OTHER/bin/serve")
    files, serve = setup(args.serve)
    args.serve = serve
    script = files / "pair.lua"
    script.write_text(LUA)
    rows = []
    for name in names:
        a_vars, b_vars = PAIRS[name]
        a_serve = args.baseline if name == "baseline" else serve
        sides = [("A", a_serve, a_vars), ("B", serve, b_vars)]
        rounds = [rnd(sides, i, files, args.duration, script) for i in range(args.rounds)]
        ratios = [r["B"] / r["A"] for r in rounds]
        cpu = [r["cpu_B"] / r["cpu_A"] for r in rounds]
        row = {"pair": name, "cost": 1 - statistics.median(ratios), "low": 1 - max(ratios), "high": 1 - min(ratios),
               "cpu": statistics.median(cpu) - 1, "rate": statistics.median(r["A"] + r["B"] for r in rounds)
               / args.duration, "rounds": len(rounds)}
        print(name, [f"{x:.3f}" for x in ratios], f"cost {row['cost']:.1%}", flush=True)
        rows.append(row)
    report = summarize(rows, args)
    print(report)
    if not args.no_docs:
        write_section(report)


def summarize(rows: list, args: argparse.Namespace) -> str:
    lines = ["## Paired costs", "",
             f"`python3 bench/bench_pair.py` ({time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} rounds of "
             f"{args.duration} s): two one-worker `serve` processes share CPU 0 and run at once, each loaded by "
             "its own `wrk -t1 -c8` on CPU 1, so the machine's drift slows both alike; the cost is the share "
             "of throughput side B gives up against side A (median over rounds, and the range). The `same` row is "
             "the method's own error: read the others against it.", "",
             "| pair | B against A | cost (median) | range over rounds | server CPU per answer | "
             "answers/s, both sides |",
             "| --- | --- | --- | --- | --- | --- |"]
    what = {"same": "`serve` against itself (the method's spread)",
            "metrics": "TOOLKIT_METRICS_PORT set against off",
            "access-log": "access log on (the default) against TOOLKIT_ACCESS_LOG=false",
            "baseline": f"{args.serve} against {args.baseline}"}
    for r in rows:
        lines.append(f"| {r['pair']} | {what[r['pair']]} | {r['cost']:.1%} | {r['low']:.1%} to {r['high']:.1%} "
                     f"| {r['cpu']:+.1%} | {r['rate']:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
