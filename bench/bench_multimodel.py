#!/usr/bin/env python3
"""Multi-model endpoint benchmark: 50 small models loaded into one `serve`, invoked round-robin under 16
connections, against single-model serving of one of them; and the time to load and to unload a model.
Results into docs/benchmarks.md (## Multi-model endpoints).

Every model is the JSON echo model of bench/bench_serving.py, each in its own folder with its own
code/inference.py (so each is imported on its own, as different models would be). `serve` is this
checkout's, from the Python running this script (the dev venv), with SAGEMAKER_MODEL_SERVER_WORKERS
workers (default: the CPU count), as bench_streaming.py runs it.

For each rep (configs interleaved, a fresh server each time):
  single       `serve` with one of the models as /opt/ml/model; wrk POSTs /invocations
  mme-path     SAGEMAKER_MULTI_MODEL=true, the 50 models loaded with POST /models (each load timed);
               wrk's Lua script rotates over POST /models/m00..m49/invoke
  mme-header   the same server; POST /invocations with X-Amzn-SageMaker-Target-Model rotating
               (what the SDK's predict(..., target_model=...) sends)
then every model is unloaded with DELETE /models/{name} (each timed). wrk -t2 -c16 for --duration
seconds after a 3 s warm-up, the 99-byte JSON body of bench_serving.py.

    .venv/bin/python bench/bench_multimodel.py                 # ~3 min; writes docs/benchmarks.md
    .venv/bin/python bench/bench_multimodel.py --reps 1 --duration 3 --no-docs   # quick look

Needs wrk. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import write_section

from toolkit.testing import clean_environ, free_port

ROOT = Path(__file__).resolve().parent.parent
BODY = "[[1.5, 2.25, 3.125, 4.0, 5.5, 6.75, 7.0, 8.125], [9.5, 10.25, 11.0, 12.5, 13.75, 14.0, 15.5, 16.0]]"
INFERENCE = '''\
"""The echo model: model_fn returns a trivial model, predict_fn echoes."""


def model_fn(model_dir):
    return {"name": "trivial"}


def predict_fn(data, model):
    return data
'''
WRK_DONE = '''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "rps": %.1f, "p50_us": %d, "p99_us": %d, "errors": %d, '
    .. '"non2xx": %d}\\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
'''
SINGLE_LUA = '''
wrk.method = "POST"
wrk.body = '@BODY@'
wrk.headers["Content-Type"] = "application/json"
''' + WRK_DONE
ROTATE_LUA = '''
local n, i = @N@, 0
local body = '@BODY@'
local by_path = @BY_PATH@
request = function()
  i = i % n + 1
  local name = string.format("m%02d", i - 1)
  if by_path then
    return wrk.format("POST", "/models/" .. name .. "/invoke", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("POST", "/invocations", {["Content-Type"] = "application/json",
                                             ["X-Amzn-SageMaker-Target-Model"] = name}, body)
end
''' + WRK_DONE


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 120.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start(base: Path, port: int, workers: int, multi: bool, log) -> subprocess.Popen:
    env = clean_environ(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(port),
                        TOOLKIT_BIND_HOST="127.0.0.1", SAGEMAKER_MODEL_SERVER_WORKERS=str(workers))
    if multi:
        env["SAGEMAKER_MULTI_MODEL"] = "true"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "serve")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=str(base))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/ping", timeout=2)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("serve never answered /ping")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=35)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(port: int, script: Path, path: str, seconds: int, log) -> dict:
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "5s", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    log.write(("\n$ " + " ".join(cmd) + "\n" + out.stdout + out.stderr).encode())
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise SystemExit("wrk gave no result: " + out.stdout[-300:] + out.stderr[-300:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    runs: dict[str, list[dict]] = {"single": [], "mme-path": [], "mme-header": []}
    loads: list[float] = []
    unloads: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = (work / "bench.log").open("ab")
        single = work / "single"
        (single / "model" / "code").mkdir(parents=True)
        (single / "model" / "code" / "inference.py").write_text(INFERENCE)
        multi = work / "multi"
        multi.mkdir()
        folders = {}
        for i in range(args.models):
            folder = work / "models" / f"m{i:02d}" / "model"
            (folder / "code").mkdir(parents=True)
            (folder / "code" / "inference.py").write_text(INFERENCE)
            folders[f"m{i:02d}"] = folder
        scripts = {"single": work / "single.lua", "mme-path": work / "path.lua", "mme-header": work / "header.lua"}
        scripts["single"].write_text(SINGLE_LUA.replace("@BODY@", BODY))
        for name, by_path in (("mme-path", "true"), ("mme-header", "false")):
            scripts[name].write_text(ROTATE_LUA.replace("@BODY@", BODY).replace("@N@", str(args.models))
                                     .replace("@BY_PATH@", by_path))
        for rep in range(args.reps):
            port = free_port()
            proc = start(single, port, args.workers, False, log)
            try:
                assert json.loads(request(port, "POST", "/invocations", BODY.encode(),
                                          {"Content-Type": "application/json"})[1]) == json.loads(BODY)
                wrk(port, scripts["single"], "/invocations", 3, log)
                runs["single"].append(wrk(port, scripts["single"], "/invocations", args.duration, log))
            finally:
                stop(proc)
            port = free_port()
            proc = start(multi, port, args.workers, True, log)
            try:
                for name, folder in folders.items():
                    started = time.perf_counter()
                    status, answer = request(port, "POST", "/models",
                                             json.dumps({"model_name": name, "url": str(folder)}).encode())
                    loads.append(time.perf_counter() - started)
                    if status != 200:
                        raise SystemExit(f"loading {name}: {status} {answer[:300]!r}")
                status, answer = request(port, "POST", "/models/m07/invoke", BODY.encode(),
                                         {"Content-Type": "application/json"})
                assert status == 200 and json.loads(answer) == json.loads(BODY), (status, answer)
                wrk(port, scripts["mme-path"], "/", 3, log)
                runs["mme-path"].append(wrk(port, scripts["mme-path"], "/", args.duration, log))
                runs["mme-header"].append(wrk(port, scripts["mme-header"], "/", args.duration, log))
                for name in folders:
                    started = time.perf_counter()
                    status, answer = request(port, "DELETE", f"/models/{name}")
                    unloads.append(time.perf_counter() - started)
                    if status != 200:
                        raise SystemExit(f"unloading {name}: {status} {answer[:300]!r}")
            finally:
                stop(proc)
            print(json.dumps({"rep": rep, **{k: v[-1] for k, v in runs.items()}}), flush=True)
        log.close()
    load_after = os.getloadavg()
    section = report(args, runs, loads, unloads, (load_before[0], load_after[0]))
    print("\n" + section)
    if not args.no_docs:
        write_section(section)


def report(args, runs: dict, loads: list, unloads: list, loadavg: tuple) -> str:
    def med(values: list) -> float:
        return statistics.median(values) if values else float("nan")

    rows = {name: {"rps": med([r["rps"] for r in rs]), "p50": med([r["p50_us"] / 1000 for r in rs]),
                   "p99": med([r["p99_us"] / 1000 for r in rs]),
                   "errors": sum(r["errors"] + r["non2xx"] for r in rs)} for name, rs in runs.items()}
    label = {"single": "single model, POST /invocations",
             "mme-path": f"{args.models} models round-robin, POST /models/{{name}}/invoke",
             "mme-header": f"{args.models} models round-robin, POST /invocations + X-Amzn-SageMaker-Target-Model"}
    base = rows["single"]
    q = statistics.quantiles(loads, n=20) if len(loads) > 1 else [float("nan")] * 19
    qu = statistics.quantiles(unloads, n=20) if len(unloads) > 1 else [float("nan")] * 19
    lines = [
        "## Multi-model endpoints",
        "",
        f"`bench/bench_multimodel.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, `serve` with {args.workers} workers and its default threads. "
        f"{args.models} copies of the JSON echo model, each in its own folder with its own inference.py; wrk -t2 "
        f"-c16, {args.duration} s per run after 3 s of warm-up, 99-byte JSON body; medians of {args.reps} runs "
        f"(fresh server each, configurations interleaved). Load average (1 min) {loadavg[0]:.1f} at the start and "
        f"{loadavg[1]:.1f} at the end; the machine is shared, so compare the rows with each other, not with "
        "other sections.",
        "",
        "| configuration | req/s | p50 ms | p99 ms | vs single model (req/s) | errors / non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(f"| {label[name]} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                     f"| {r['rps'] / base['rps']:.2f}x | {r['errors']} |")
    lines += [
        "",
        "Per request, a multi-model endpoint adds a dictionary lookup of the model and a path rewrite before "
        "the single-model code path; each model has its own handler and codecs are shared. Run-to-run spread "
        "(req/s, lowest to highest rep): " + "; ".join(
            f"{name} {min(r['rps'] for r in rs):,.0f} to {max(r['rps'] for r in rs):,.0f}"
            for name, rs in runs.items() if rs) + ".",
        "",
        f"Time to load a model (POST /models until its 200: checks, dependency install (none here), import and "
        f"`model_fn` in every worker, every acknowledgement), {len(loads)} loads: median "
        f"{med(loads) * 1000:.1f} ms, p95 {q[18] * 1000:.1f} ms. Time to unload one (DELETE until its 200: every "
        f"worker drops it, `gc.collect()`, `malloc_trim(0)`, acknowledges), {len(unloads)} unloads: median "
        f"{med(unloads) * 1000:.1f} ms, p95 {qu[18] * 1000:.1f} ms.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
