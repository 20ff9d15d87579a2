#!/usr/bin/env python3
"""Dynamic batching benchmark: `serve` with and without batching, the AWS inference toolkit on Multi
Model Server and TorchServe with its batching, on two torch models, side by side in one run; results
into docs/benchmarks.md (## Dynamic batching).

Models (TorchScript, random weights from torch.manual_seed(0), one torch thread per worker process):
  mlp     256 -> 1024 -> 1024 -> 10, as in the TorchServe peer set-up (a 32-row call costs 5-10x a 1-row one)
  mlp-l   256 -> 2048 -> 2048 -> 2048 -> 10 (8.9 M parameters): the "at least 2 ms per single-row call" model;
          the run measures and reports its 1-row and 32-row call times in-process
Each request is one row, `{"inputs": [256 floats]}` (the peer's body); each answer 10 floats. Both
inference.py and the TorchServe handler turn the floats into a tensor through numpy.

Servers, 2 worker processes each (one per CPU), started fresh for each rep, configs interleaved:
  batched     this checkout's `serve`, TOOLKIT_MAX_BATCH_SIZE=32, TOOLKIT_MAX_BATCH_WAIT_MS=5, the
              default batch call (torch.cat of the (1, 256) inputs, one forward pass, a row each)
  unbatched   the same `serve` and inference.py, batching off
  mms         sagemaker-inference 1.10.1 on multi-model-server 1.1.11, the same inference.py
  torchserve  TorchServe 0.12.0, batch_size=32, max_batch_delay=5 ms, the peer's batching handler
and, by --configs only: batched16 (batch 16), batched-gil1 (1 ms GIL switch), batched-handoff0 and
unbatched-handoff0 (TOOLKIT_LOOP_HANDOFF_MS=0: every request handed to a request thread, waitress's
design, instead of answered by the event loop's thread), batched-nofreeze (TOOLKIT_GC_FREEZE=false).
For each: first /ping 200, one answer checked against the in-process model, 3 s warm-up at 64
connections, then at 32 and at 64 connections: 2 s of wrk -t1 on the new connections (not measured:
a server that rebalances its kept-alive connections settles), then the measured run.

    python3 bench/bench_batching.py                       # ~15 min; writes docs/benchmarks.md
    python3 bench/bench_batching.py --reps 1 --duration 5 --no-docs    # quick look

Needs what bench_serving.py needs (wrk, Java 17, installed by apt-get when missing; Python 3.11 for
MMS and TorchServe) and network to PyPI for the first run (torch==2.13.0, the CPU build here).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bench_serving as bs
from benchdoc import write_section

TORCH = "torch==2.13.0"
MODELS = {"mlp": [256, 1024, 1024, 10], "mlp-l": [256, 2048, 2048, 2048, 10]}
CONFIGS = ("batched", "unbatched", "mms", "torchserve")
# `serve` batching variants (not run by default): --configs batched,batched16,...
VARIANTS = {"batched16": {"TOOLKIT_MAX_BATCH_SIZE": "16"},  # half a worker's connections at 64: two batches alternate
            "batched-gil1": {"TOOLKIT_GIL_SWITCH_MS": "1"},  # the threads a batch wakes get the GIL sooner
            "batched-handoff0": {"TOOLKIT_LOOP_HANDOFF_MS": "0"},  # a thread per waiting request
            "batched-nofreeze": {"TOOLKIT_GC_FREEZE": "false"}}  # full collections walk torch's objects
ROW = [round(math.sin(i) * 0.5, 4) for i in range(1, 257)]
BODY = json.dumps({"inputs": ROW})

MAKE_MODEL = '''\
import sys, torch
torch.manual_seed(0)
sizes = [int(x) for x in sys.argv[2].split(",")]
layers = []
for a, b in zip(sizes, sizes[1:]):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
torch.jit.script(torch.nn.Sequential(*layers[:-1]).eval()).save(sys.argv[1])
'''
INPROC = '''\
import json, sys, time, torch
''' + bs.TIMED + '''torch.set_num_threads(1)
model = torch.jit.load(sys.argv[1])
row = json.loads(sys.argv[2])
out = {}
with torch.no_grad():
    for n in (1, 32):
        x = torch.tensor([row] * n)
        for _ in range(5):
            model(x)
        times = []
        for _ in range(50):
            t = time.thread_time(); model(x); times.append(time.thread_time() - t)  # CPU: other work does not count
        out[n] = sorted(times)[25] * 1000
    # the request's own handler work around the model, as INFERENCE below does it (thread CPU time)
    import numpy
    body = json.dumps({"inputs": row}).encode()
    def input_fn():
        return torch.from_numpy(numpy.array([json.loads(body)["inputs"]], dtype=numpy.float32))
    y = model(torch.tensor([row] * 32))
    def output_fn():
        return json.dumps(y[3:4][0].tolist())  # a request's rows of the batch output, then encoded
    print(json.dumps({"one_ms": out[1], "batch32_ms": out[32], "input_us": timed(input_fn, 2000, time.thread_time),
                      "output_us": timed(output_fn, 2000, time.thread_time),
                      "reference": model(torch.tensor([row]))[0].tolist()}))
'''
# The same inference.py for `serve` (with or without batching) and for the AWS toolkit on MMS.
INFERENCE = '''\
"""A TorchScript model; one request is {"inputs": [floats]}, one row."""
import json
import os

import numpy
import torch


def model_fn(model_dir):
    torch.set_num_threads(1)  # one core per worker process
    return torch.jit.load(os.path.join(model_dir, "model.pt")).eval()


def input_fn(body, content_type):
    # shape (1, 256): rows, so batches stack (numpy converts the floats 5x faster than torch.tensor)
    return torch.from_numpy(numpy.array([json.loads(body)["inputs"]], dtype=numpy.float32))


def predict_fn(data, model):  # called with (1, 256), or with (N, 256) once per batch
    with torch.no_grad():
        return model(data)


def output_fn(prediction, accept):  # this request's rows
    return json.dumps(prediction[0].tolist()), "application/json"
'''
# The TorchServe peer's handler (../shared/peers/torchserve/mlp_handler.py), without its stats lines,
# and converting the rows with numpy as the inference.py above does.
TS_HANDLER = '''\
import json
import os

import numpy
import torch
from ts.torch_handler.base_handler import BaseHandler


class MLPHandler(BaseHandler):
    def initialize(self, context):
        torch.set_num_threads(1)
        model_dir = context.system_properties.get("model_dir")
        self.model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location="cpu")
        self.model.eval()
        self.initialized = True

    @staticmethod
    def _row(req):
        body = req.get("body")
        if body is None:
            body = req.get("data")
        if isinstance(body, (bytes, bytearray, str)):
            body = json.loads(body)
        return body["inputs"]

    def handle(self, data, context):
        x = torch.from_numpy(numpy.array([self._row(r) for r in data], dtype=numpy.float32))
        with torch.no_grad():
            y = self.model(x)
        return y.tolist()
'''
TS_CONFIG = f'''\
inference_address=http://127.0.0.1:{bs.PORT}
management_address=http://127.0.0.1:{bs.PORT + 11}
metrics_address=http://127.0.0.1:{bs.PORT + 12}
disable_token_authorization=true
enable_model_api=true
install_py_dep_per_model=false
disable_system_metrics=true
async_logging=true
default_response_timeout=60
job_queue_size=1000
'''
WRK_LUA = bs.wrk_lua(BODY)


def pip(venv: Path, *packages: str) -> None:
    bs.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *packages])


def setup() -> dict:
    paths = bs.setup(None)  # wrk, Java, this checkout's `serve` in its own venv, the MMS venv
    toolkit = paths["serve"].parent.parent
    for venv in (toolkit, paths["mms"]):
        if subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True).returncode:
            # torch pulls setuptools >= 77; sagemaker-inference imports pkg_resources, gone from setuptools 81
            pip(venv, TORCH, "setuptools>=77.0.3,<81")
    ts = bs.venv("torchserve", bs.python311(), [TORCH])  # torch first: the others must not pull another
    if subprocess.run([str(ts / "bin" / "python"), "-c", "import ts, yaml"], capture_output=True).returncode:
        # pyyaml: torchserve 0.12.0 imports yaml in every worker but does not declare it
        pip(ts, "torchserve==0.12.0", "torch-model-archiver==0.12.0", "numpy", "pyyaml")
    files = bs.WORK / "batching"
    for sub in ("model_store", "tmp", "logs"):
        (files / "ts" / sub).mkdir(parents=True, exist_ok=True)
    (files / "post.lua").write_text(WRK_LUA)
    (files / "make_model.py").write_text(MAKE_MODEL)
    (files / "inproc.py").write_text(INPROC)
    (files / "ts" / "config.properties").write_text(TS_CONFIG)
    (files / "ts" / "handler.py").write_text(TS_HANDLER)
    python = toolkit / "bin" / "python"
    for name, sizes in MODELS.items():
        model = files / name / "model"
        (model / "code").mkdir(parents=True, exist_ok=True)
        (model / "code" / "inference.py").write_text(INFERENCE)
        if not (model / "model.pt").exists():
            bs.run([str(python), str(files / "make_model.py"), str(model / "model.pt"), ",".join(map(str, sizes))])
        archive = files / "ts" / "model_store" / f"{name}.mar"
        if not archive.exists():
            bs.run([str(ts / "bin" / "torch-model-archiver"), "--model-name", name, "--version", "1.0",
                    "--serialized-file", str(model / "model.pt"), "--handler", str(files / "ts" / "handler.py"),
                    "--export-path", str(files / "ts" / "model_store"), "--force"])
    return {**paths, "toolkit": toolkit, "ts": ts, "batching": files}  # paths["files"]: bench_serving's


def configs(paths: dict, model: str) -> dict:
    files = paths["batching"]
    base = {"SAGEMAKER_BASE_DIR": str(files / model), "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
            "OMP_NUM_THREADS": "1"}
    serve = dict(argv=[str(paths["serve"])], cwd=files, env={
        **base, "SAGEMAKER_BIND_TO_PORT": str(bs.PORT), "TOOLKIT_BIND_HOST": "127.0.0.1"})
    mms = bs.configs(paths)["mms"]
    ts = paths["ts"] / "bin"
    return {
        "batched": {**serve, "env": {**serve["env"], "TOOLKIT_MAX_BATCH_SIZE": "32", "TOOLKIT_MAX_BATCH_WAIT_MS": "5"}},
        "unbatched": serve,
        "unbatched-handoff0": {**serve, "env": {**serve["env"], "TOOLKIT_LOOP_HANDOFF_MS": "0"}},
        **{name: {**serve, "env": {**serve["env"], "TOOLKIT_MAX_BATCH_SIZE": "32", "TOOLKIT_MAX_BATCH_WAIT_MS": "5",
                                   **extra}} for name, extra in VARIANTS.items()},
        "mms": {**mms, "env": {**mms["env"], **base}},
        "torchserve": dict(argv=[str(ts / "torchserve"), "--start", "--ncs", "--foreground", "--ts-config",
                                 str(files / "ts" / "config.properties"), "--model-store",
                                 str(files / "ts" / "model_store")],
                           cwd=files / "ts", env={"PATH": f"{ts}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
                                                  "LOG_LOCATION": str(files / "ts" / "logs"),
                                                  "METRICS_LOCATION": str(files / "ts" / "logs"),
                                                  "TMPDIR": str(files / "ts" / "tmp")},
                           # like MMS, it refuses to start while the pid file of a stopped one is there
                           stale=[files / "ts" / "tmp" / ".model_server.pid"],
                           path=f"/predictions/{model}", register=model),
    }


def process_cpu(sid: int) -> dict:
    """CPU seconds so far of each live process of the server's session."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in bs.session_pids(sid):
        try:
            stat = bs.proc_stat(pid)
        except (OSError, IndexError):
            continue
        out[pid] = (int(stat[11]) + int(stat[12])) / ticks
    return out


def split(before: dict, after: dict) -> list:
    """Each process's share of the server's CPU over a cell, busiest first, in % (two workers equally
    busy: ~[50, 50, 0]; one worker holding most connections: [90, 10, 0])."""
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    total = sum(used.values()) or 1.0
    return sorted((round(100 * v / total) for v in used.values()), reverse=True)


def ready(cfg: dict, proc, started: float, reference: list) -> float:
    """Seconds to the first /ping 200 (TorchServe: then registers the model); checks one answer."""

    def register() -> None:
        query = (f"url={cfg['register']}.mar&model_name={cfg['register']}&batch_size=32&max_batch_delay=5"
                 f"&initial_workers=2&synchronous=true")
        conn = http.client.HTTPConnection("127.0.0.1", bs.PORT + 11, timeout=120)
        conn.request("POST", f"/models?{query}")
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"TorchServe did not register: {resp.status} {resp.read()[:300]!r}")

    def check(answer: bytes) -> None:
        got = json.loads(answer)
        if len(got) != len(reference) or max(abs(a - b) for a, b in zip(got, reference)) > 1e-4:
            raise RuntimeError(f"answered {answer[:200]!r}, not the model's output")

    return bs.wait_ready(proc, started, 180.0, cfg.get("path", "/invocations"), BODY, check,
                         register if cfg.get("register") else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--reps", type=int, default=2, help="load reps per config and model (fresh server each)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--baseline", default=None,
                    help="another `serve` (e.g. main's, with torch), run as config `baseline`: batched, interleaved")
    args = ap.parse_args()
    names, models = args.configs.split(","), args.models.split(",")
    if args.baseline:
        names.append("baseline")
    paths = setup()
    inproc = {}
    for model in models:
        out = subprocess.run([str(paths["toolkit"] / "bin" / "python"), str(paths["batching"] / "inproc.py"),
                              str(paths["batching"] / model / "model" / "model.pt"), json.dumps(ROW)],
                             capture_output=True, text=True, check=True)
        inproc[model] = json.loads(out.stdout)
        print(model, {k: v for k, v in inproc[model].items() if k != "reference"}, flush=True)
    (bs.WORK / "logs").mkdir(exist_ok=True)
    log = (bs.WORK / "logs" / f"batching-{time.strftime('%Y%m%d-%H%M%S')}.log").open("ab")
    results: list = []
    load_before = os.getloadavg()
    for rep in range(args.reps):
        for model in models:
            cfgs = configs(paths, model)
            if args.baseline:
                cfgs["baseline"] = {**cfgs["batched"], "argv": [args.baseline]}
            for name in names:
                cfg = cfgs[name]
                log.write(f"\n==== {model} {name} {rep}\n".encode())
                proc, started = bs.start(cfg, log)
                try:
                    ready(cfg, proc, started, inproc[model]["reference"])
                    path = cfg.get("path", "/invocations")
                    bs.wrk(1, 64, 3, paths["batching"], log, path=path)  # warm-up (Java's JIT too)
                    record = {"model": model, "config": name, "rep": rep}
                    for conns in (32, 64):
                        bs.wrk(1, conns, 2, paths["batching"], log, path=path)  # the new connections settle
                        cpu, switches = bs.session_cpu(proc.pid), bs.session_switches(proc.pid)
                        each = process_cpu(proc.pid)
                        result = record[f"c{conns}"] = bs.wrk(1, conns, args.duration, paths["batching"], log,
                                                              path=path)
                        served = max(result["requests"], 1)  # the server's own CPU and context switches per answer
                        result["cpu_us"] = round((bs.session_cpu(proc.pid) - cpu) * 1e6 / served, 1)
                        result["switches"] = round((bs.session_switches(proc.pid) - switches) / served, 2)
                        result["cpu_split"] = split(each, process_cpu(proc.pid))
                finally:
                    bs.stop(proc)
                results.append(record)
                print(json.dumps(record), flush=True)
    log.close()
    report = summarize(results, names, models, inproc, args, (load_before, os.getloadavg()))
    print("\n" + report)
    if not args.no_docs:
        write_section("## Dynamic batching\n\n" + textwrap.dedent(report).strip() + "\n")


def summarize(results: list, names: list, models: list, inproc: dict, args, loadavg) -> str:
    label = {"batched": "`serve`, batching 32 / 5 ms", "unbatched": "`serve`, no batching",
             "batched-handoff0": "`serve`, batching 32 / 5 ms, TOOLKIT_LOOP_HANDOFF_MS=0",
             "unbatched-handoff0": "`serve`, no batching, TOOLKIT_LOOP_HANDOFF_MS=0",
             "batched16": "`serve`, batching 16 / 5 ms", "baseline": "`serve` before this change, batching 32 / 5 ms",
             "batched-gil1": "`serve`, batching 32 / 5 ms, 1 ms GIL switch",
             "batched-nofreeze": "`serve`, batching 32 / 5 ms, TOOLKIT_GC_FREEZE=false",
             "mms": "AWS inference toolkit on MMS", "torchserve": "TorchServe 0.12, batch 32 / 5 ms"}
    out = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/bench_batching.py` on this "
           f"machine ({os.cpu_count()} CPUs, shared with wrk: compare ratios from the same run). Each server "
           f"runs 2 worker processes with one torch thread each; one row per request (`{{\"inputs\": [256 "
           f"floats]}}`); wrk -t1, {args.duration} s per cell after a 3 s warm-up and 2 s on the cell's own "
           f"connections, a fresh server per rep, "
           f"configs interleaved, medians of {args.reps} reps. Load average (1 min) {loadavg[0][0]:.1f} at "
           f"the start and {loadavg[1][0]:.1f} at the end.", ""]
    for model in models:
        sizes = " -> ".join(map(str, MODELS[model]))
        call = inproc[model]
        out += [f"### {model}: {sizes}", "",
                f"In-process, one torch thread, median CPU time of 50 calls: 1 row {call['one_ms']:.2f} ms, 32 rows "
                f"{call['batch32_ms']:.2f} ms ({call['batch32_ms'] / call['one_ms']:.1f}x for 32x the rows).", "",
                "| server | req/s, 32 conn | p50 / p99 ms, 32 conn | req/s, 64 conn | p50 / p99 ms, 64 conn "
                "| server CPU per answer, 32 / 64 conn (us) | errors |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        rows = {}
        for name in names:
            runs = [r for r in results if r["model"] == model and r["config"] == name]
            if not runs:
                continue
            row = rows[name] = {}
            for conns in (32, 64):
                key = f"c{conns}"
                row[conns] = {"rps": statistics.median(r[key]["rps"] for r in runs),
                              "p50": statistics.median(r[key]["p50_us"] for r in runs) / 1000,
                              "p99": statistics.median(r[key]["p99_us"] for r in runs) / 1000,
                              "cpu": statistics.median(r[key].get("cpu_us", float("nan")) for r in runs)}
            row["errors"] = sum(r[k]["errors"] for r in runs for k in ("c32", "c64"))
            out.append(f"| {label[name]} | {row[32]['rps']:,.0f} | {row[32]['p50']:.1f} / {row[32]['p99']:.1f} "
                       f"| {row[64]['rps']:,.0f} | {row[64]['p50']:.1f} / {row[64]['p99']:.1f} "
                       f"| {row[32]['cpu']:.0f} / {row[64]['cpu']:.0f} | {row['errors']} |")
        if "batched" in rows:
            b = rows["batched"]
            out += ["", "Targets, as measured in this run:", ""]
            bound = 5 + 2 * call["batch32_ms"]
            for conns in (32, 64):
                parts = []
                if "unbatched" in rows:
                    parts.append(f"{b[conns]['rps'] / rows['unbatched'][conns]['rps']:.2f}x `serve` without "
                                 f"batching (target 3x)")
                parts.append(f"p99 {b[conns]['p99']:.1f} ms against max wait + two 32-row calls = {bound:.1f} ms")
                if "torchserve" in rows:
                    t = rows["torchserve"][conns]
                    parts.append(f"{b[conns]['rps'] / t['rps']:.2f}x TorchServe's batched throughput (target 2x), "
                                 f"p99 {b[conns]['p99']:.1f} against {t['p99']:.1f} ms")
                if "mms" in rows:
                    parts.append(f"{b[conns]['rps'] / rows['mms'][conns]['rps']:.2f}x the AWS toolkit on MMS")
                out.append(f"- {conns} connections: " + "; ".join(parts))
            if "unbatched" in rows and "input_us" in call:
                handler = call["input_us"] + call["output_us"]
                one, per_row = call["one_ms"] * 1000, call["batch32_ms"] * 1000 / 32
                saved = one - per_row
                cpu = rows["unbatched"][64]["cpu"]
                out += ["", f"Where a request's time goes (in-process): input_fn {call['input_us']:.0f} us, "
                            f"output_fn {call['output_us']:.0f} us, the model {one:.0f} us for one row and "
                            f"{per_row:.0f} us per row of a 32-row call. Batching saves {saved:.0f} us of model time "
                            f"per request and nothing else: with no HTTP server at all the best it could bring is "
                            f"{(handler + one) / (handler + per_row):.2f}x" + (
                                f"; against the {cpu:.0f} us of server CPU an unbatched answer took in this run (64 "
                                f"connections), {cpu / (cpu - saved):.2f}x." if cpu > 2 * saved else ".")]
            out += ["", f"wrk keeps every connection busy, so the mean latency is connections / throughput (Little's "
                        f"law): {32000 / b[32]['rps']:.1f} ms at 32 and {64000 / b[64]['rps']:.1f} ms at 64 "
                        f"connections for batched `serve`, and p99 is above the mean. The bound of max wait + "
                        f"two batch calls counts the model alone (measured in-process), not the HTTP, JSON and "
                        f"tensor work of each request around it, which on 2 CPUs shared with wrk is most of the time."]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
