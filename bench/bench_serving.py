#!/usr/bin/env python3
"""Serving benchmark: `serve` side by side with the peers, in one run; results into docs/benchmarks.md.

Peers (each installed in its own venv under $TOOLKIT_BENCH_DIR, default ~/.cache/toolkit-bench):
  mms       the AWS inference toolkit (sagemaker-inference 1.10.1) on Multi Model Server 1.1.11
            (Java; started as framework containers start it, with the stock handler service)
  waitress  a plain Flask app on one waitress process
  gunicorn  the same Flask app on gunicorn with 2 sync workers
and `toolkit`: this checkout's `serve`, pip-installed into its own venv the same way
(SAGEMAKER_MODEL_SERVER_WORKERS defaults to the CPU count), with its defaults, and three variants of it
that each change one setting: `toolkit-nolog` (TOOLKIT_ACCESS_LOG=false: the access log's cost),
`toolkit-metrics` (TOOLKIT_METRICS_PORT set: the metrics' cost), `toolkit-gil1`
(TOOLKIT_GIL_SWITCH_MS=1: a 1 ms GIL switch interval instead of Python's 5 ms, for the p99 tail) and
`toolkit-handoff0` (TOOLKIT_LOOP_HANDOFF_MS=0: every request handed to a request thread, waitress's
own design, instead of answered by the event loop's thread).
All run the same JSON echo model (model_fn + echo predict_fn; Flask echoes the same JSON).

For each rep (configs interleaved, in an order rotated from rep to rep and reversed every other rep,
a fresh server each time):
start, first /ping 200, one POST /invocations checked to echo, 3 s warm-up, then wrk -t2 -c16 and
wrk -t1 -c1 (POST of a 99-byte JSON body), sampling RSS summed over all the server's processes.
Cold start: separate start/stop cycles, Popen -> first /ping 200. Memory with an 8 MB CSV body:
`serve` with one worker, the worker's peak RSS
(VmHWM) over its resting RSS while it decodes the body.

    python3 bench/bench_serving.py                    # ~8 min; writes docs/benchmarks.md ## Serving
    python3 bench/bench_serving.py --reps 1 --duration 3 --no-docs   # quick look
    python3 bench/bench_serving.py --configs toolkit --serve NEW/bin/serve --baseline OLD/bin/serve --no-docs
                                                      # a change against what it changes, interleaved

Needs: root or pre-installed wrk and Java 17 (apt-get install wrk openjdk-17-jre-headless), Python
3.11 for MMS (found under pyenv or as python3.11), network to PyPI for the first run.
Standard library only.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from benchdoc import write_section

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("TOOLKIT_BENCH_DIR", str(Path.home() / ".cache" / "toolkit-bench")))
PORT = int(os.environ.get("TOOLKIT_BENCH_PORT", "18080"))
BODY = "[[1.5, 2.25, 3.125, 4.0, 5.5, 6.75, 7.0, 8.125], [9.5, 10.25, 11.0, 12.5, 13.75, 14.0, 15.5, 16.0]]"
CONFIGS = ("toolkit", "mms", "waitress", "gunicorn", "toolkit-nolog", "toolkit-metrics",
           "toolkit-gil1", "toolkit-handoff0")
# `serve` variants, each one setting away from the default, for what it costs or brings
VARIANTS = {"toolkit-nolog": {"TOOLKIT_ACCESS_LOG": "false"},
            "toolkit-metrics": {"TOOLKIT_METRICS_PORT": str(PORT + 10)},
            "toolkit-gil1": {"TOOLKIT_GIL_SWITCH_MS": "1"},
            "toolkit-handoff0": {"TOOLKIT_LOOP_HANDOFF_MS": "0"}}

INFERENCE = '''\
"""The echo model every server runs: model_fn returns a trivial model, predict_fn echoes."""


def model_fn(model_dir):
    return {"name": "trivial"}


def predict_fn(data, model):
    return data
'''
CSV_INFERENCE = '''\
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    return list(getattr(data, "shape", (len(data),)))
'''
FLASK_APP = '''\
import json

from flask import Flask, Response, request

app = Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return Response(status=200)


@app.route("/invocations", methods=["POST"])
def invocations():
    if request.mimetype != "application/json":
        return Response("unsupported content type", status=415)
    return Response(json.dumps(json.loads(request.get_data())), status=200, mimetype="application/json")
'''
MMS_HANDLER = '''\
from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.transformer import Transformer


class HandlerService(DefaultHandlerService):
    def __init__(self):
        super().__init__(transformer=Transformer(default_inference_handler=DefaultInferenceHandler()))
'''
MMS_START = '''\
import os

from sagemaker_inference import model_server

# the one change from a framework container: the generated MMS config is not written to /etc
model_server.MMS_CONFIG_FILE = os.environ["BENCH_MMS_CONFIG"]
model_server.start_model_server(handler_service="bench_handler_service")
'''
WRK_TEMPLATE = '''\
wrk.method = "POST"
wrk.body = '@BODY@'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "rps": %.1f, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
'''


def wrk_lua(body: str) -> str:
    """A wrk script that POSTs ``body`` as JSON and prints a ``WRKJSON {...}`` summary line."""
    return WRK_TEMPLATE.replace("@BODY@", body)


WRK_LUA = wrk_lua(BODY)


# ---------------------------------------------------------------------------------- set-up


def run(cmd: list, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(cmd, check=True, **kw)


def python311() -> str:
    for cand in [os.environ.get("BENCH_PY311", ""), *sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python")),
                 shutil.which("python3.11") or ""]:
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("Multi Model Server needs Python 3.11 (sagemaker-inference 1.10.1): set BENCH_PY311")


def venv(name: str, python: str, packages: list) -> Path:
    path = WORK / name
    marker = path / ".installed"
    if not marker.exists():
        if not (path / "bin" / "python").exists():
            run([python, "-m", "venv", str(path)])
        run([str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *packages])
        marker.write_text(" ".join(packages))
    return path


def setup(serve: Path | None) -> dict:
    missing = [tool for tool in ("wrk", "java") if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit(f"missing {missing}: install wrk and a Java 17 runtime")
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "wrk", "openjdk-17-jre-headless"],
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    WORK.mkdir(parents=True, exist_ok=True)
    if serve is None:  # this checkout, installed in its own venv like the peers (not the dev venv's 150 packages)
        tk = venv("toolkit", sys.executable, [str(ROOT), "numpy"])
        run([str(tk / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps",
             "--force-reinstall", str(ROOT)])
        serve = tk / "bin" / "serve"
    if not serve.exists():
        sys.exit(f"{serve} not found")
    mms = venv("mms", python311(), ["sagemaker-inference==1.10.1", "multi-model-server==1.1.11"])
    flask = venv("flask", sys.executable, ["flask", "waitress", "gunicorn"])
    files = WORK / "files"
    for rel, text in {"optml/model/code/inference.py": INFERENCE, "csvml/model/code/inference.py": CSV_INFERENCE,
                      "flask/flask_app.py": FLASK_APP, "mms/bench_handler_service.py": MMS_HANDLER,
                      "mms/start_mms.py": MMS_START, "post.lua": WRK_LUA}.items():
        path = files / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for sub in ("mms/tmp", "mms/logs"):
        (files / sub).mkdir(parents=True, exist_ok=True)
    return {"mms": mms, "flask": flask, "files": files, "serve": serve}


def configs(paths: dict) -> dict:
    files, flask, mms = paths["files"], paths["flask"] / "bin", paths["mms"] / "bin"
    address = ["--host", "127.0.0.1", "--port", str(PORT)]
    toolkit = dict(argv=[str(paths["serve"])], cwd=files, env={
        "SAGEMAKER_BASE_DIR": str(files / "optml"), "SAGEMAKER_BIND_TO_PORT": str(PORT),
        "TOOLKIT_BIND_HOST": "127.0.0.1"})
    return {
        "toolkit": toolkit,
        **{name: {**toolkit, "env": {**toolkit["env"], **extra}} for name, extra in VARIANTS.items()},
        "mms": dict(argv=[str(mms / "python"), str(files / "mms" / "start_mms.py")], cwd=files / "mms", env={
            "PATH": f"{mms}:{os.environ['PATH']}", "SAGEMAKER_BASE_DIR": str(files / "optml"),
            "SAGEMAKER_BIND_TO_PORT": str(PORT), "PYTHONPATH": str(files / "mms"),
            "TMPDIR": str(files / "mms" / "tmp"), "TEMP": str(files / "mms" / "tmp"),
            "LOG_LOCATION": str(files / "mms" / "logs"),
            "BENCH_MMS_CONFIG": str(files / "mms" / "sagemaker-mms.properties")},
            # MMS refuses to start ("already running") while the pid in this file exists, and the
            # previous run's Java process can linger a moment as a zombie of PID 1 after stop()
            stale=[files / "mms" / "tmp" / ".model_server.pid"]),
        "waitress": dict(argv=[str(flask / "waitress-serve"), *address, "flask_app:app"], cwd=files / "flask"),
        "gunicorn": dict(argv=[str(flask / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{PORT}", "flask_app:app"],
                         cwd=files / "flask"),
    }


# ---------------------------------------------------------------------------------- processes


def proc_stat(pid: int) -> list:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # [0] state, [3] session


def session_pids(sid: int) -> list:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = proc_stat(int(entry))
            except (OSError, IndexError):
                continue
            if int(stat[3]) == sid and stat[0] != "Z":
                pids.append(int(entry))
    return pids


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a session."""
    total = 0
    for pid in session_pids(sid):
        try:
            stat = proc_stat(pid)
        except (OSError, IndexError):
            continue
        total += int(stat[11]) + int(stat[12])  # utime, stime (fields 14, 15 of /proc/PID/stat)
    return total / os.sysconf("SC_CLK_TCK")


def session_switches(sid: int) -> int:
    """Context switches so far (voluntary + involuntary) of every thread of a session's live processes:
    each time a thread sleeps to wait for another (a hand-off, a lock) is a voluntary one."""
    total = 0
    for pid in session_pids(sid):
        for status in glob.glob(f"/proc/{pid}/task/*/status"):
            try:
                text = Path(status).read_text()
            except OSError:
                continue
            total += sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches:" in line)
    return total


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak of the RSS summed over every process of the server's session."""

    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True)
        self.sid, self.peak, self.done = sid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, sum(status_kb(p, "VmRSS") for p in session_pids(self.sid)))
            self.done.wait(0.25)


def port_open() -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", PORT)) == 0


def request(method: str, path: str, body=None, content_type="application/json", timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start(cfg: dict, log) -> tuple:
    deadline = time.monotonic() + 15
    while port_open():
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {PORT} is busy")
        time.sleep(0.1)
    for path in cfg.get("stale", ()):  # the previous server of this config is stopped: its pid file is stale
        Path(path).unlink(missing_ok=True)
    env = dict(os.environ, **cfg.get("env", {}))
    started = time.monotonic()
    proc = subprocess.Popen(cfg["argv"], cwd=str(cfg["cwd"]), env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, started


def wait_ready(proc, started: float, limit: float = 120.0, path: str = "/invocations", body: str = BODY,
               check=None, on_ping=None) -> float:
    """Seconds from Popen to the first /ping 200; then checks one POST of ``body`` to ``path``:
    ``check(answer)`` raises when the answer is wrong (default: it must echo ``body``). ``on_ping()``
    runs once, after the first /ping 200 (to register a model, say)."""

    def echoes(answer: bytes) -> None:
        if json.loads(answer) != json.loads(body):
            raise RuntimeError(f"{path} did not echo: {answer[:200]!r}")

    ping = None
    while time.monotonic() - started < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if ping is None and request("GET", "/ping", timeout=2)[0] == 200:
                ping = time.monotonic() - started
                if on_ping is not None:
                    on_ping()
            if ping is not None:
                status, answer = request("POST", path, body)
                if status == 200:
                    (check or echoes)(answer)
                    return ping
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"not ready after {limit} s")


def stop(proc) -> None:
    sid = proc.pid
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while session_pids(sid) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(0.05)
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=15)
    deadline = time.monotonic() + 15
    while port_open() and time.monotonic() < deadline:
        time.sleep(0.05)


def wrk(threads: int, conns: int, seconds: int, files: Path, log, script: str = "post.lua",
        path: str = "/invocations") -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s",
           "-s", str(files / script), f"http://127.0.0.1:{PORT}{path}"]
    # a session of its own: with the kernel's autogroups, CPU is shared between sessions first, and wrk
    # in the session of the work that loads the machine was starved by it (its own scheduling delay,
    # counted in every latency it measures, gave p99 of 200-400 ms against 8 ms in a session of its own)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, start_new_session=True)
    log.write(("\n$ " + " ".join(cmd) + "\n" + out.stdout + out.stderr).encode())
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError("wrk gave no result: " + out.stdout[-300:] + out.stderr[-300:])


# ---------------------------------------------------------------------------------- measurements


def csv_memory(paths: dict, log) -> dict:
    """`serve` with one worker: peak RSS over resting RSS while it answers an 8 MB CSV body."""
    line_of = (",".join(f"{(r * 31 + c) % 997 / 7:.4f}" for c in range(10)) + "\n" for r in range(10**7))
    lines, size = [], 0
    while size < 8 << 20:
        lines.append(next(line_of))
        size += len(lines[-1])
    body = "".join(lines).encode()
    cfg = configs(paths)["toolkit"]
    cfg = dict(cfg, env=dict(cfg["env"], SAGEMAKER_BASE_DIR=str(paths["files"] / "csvml"),
                             SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_MAX_PAYLOAD_IN_MB="20"))
    proc, _ = start(cfg, log)
    try:
        while request_safe("/ping") != 200:
            time.sleep(0.02)
        request("POST", "/invocations", b"1,2\n3,4\n", "text/csv")  # numpy imported, everything warm
        worker = next(p for p in session_pids(proc.pid) if p != proc.pid)
        resting = status_kb(worker, "VmRSS")
        before_peak = status_kb(worker, "VmHWM")
        status, answer = request("POST", "/invocations", body, "text/csv", timeout=60)
        peak = status_kb(worker, "VmHWM")
    finally:
        stop(proc)
    return {"body_mb": round(len(body) / 2**20, 2), "status": status, "answer": answer.decode()[:40],
            "resting_mb": round(resting / 1024, 1), "peak_before_mb": round(before_peak / 1024, 1),
            "peak_mb": round(peak / 1024, 1), "extra_mb": round((peak - resting) / 1024, 1),
            "extra_x_body": round((peak - resting) * 1024 / len(body), 2)}


TIMED = '''
def timed(step, n=100000, clock=None):
    """Microseconds per call of ``step``, the best of 5 rounds of ``n`` (``clock``: time.perf_counter)."""
    import time
    clock = clock or time.perf_counter
    best = float("inf")
    for _ in range(5):
        started = clock()
        for _ in range(n):
            step()
        best = min(best, (clock() - started) / n)
    return best * 1e6
'''
PER_REQUEST = '''\
import collections, json, os, sys, time
''' + TIMED + '''from toolkit.serving.metrics import Metrics
from toolkit.serving.observer import Observer
metrics = Metrics(2)
metrics.bind(0)
environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "toolkit.model": "model"}
headers = [("Content-Type", "application/json"), ("Content-Length", "99")]
def app(environ, start_response):  # as a RoutedApp answers: it leaves (status, size) for the access log
    environ["toolkit.answer"] = (200, 99)
    start_response("200 OK", headers)
    return (b"",)
def start_response(status, headers, exc_info=None):
    return None
observer = Observer(app, True, False)
sys.stderr = open(os.devnull, "w")  # the lines are made and written, to nowhere
ANSWER = ("model", 200, 0.0012)
def count():  # the request's part
    metrics.answered(ANSWER)
def folded():  # the folding thread's part, per answer
    for _ in range(100000):
        metrics.answered(ANSWER)
    started = time.perf_counter()
    metrics.fold()
    return (time.perf_counter() - started) / 100000 * 1e6
kept = collections.deque(maxlen=1000)
observer._add = kept.append  # the request's part keeps the raw fields; the flushing thread formats them
request = timed(lambda: observer(environ, start_response)) - timed(lambda: app(environ, start_response))
records = list(kept)
line = timed(lambda: observer.access_log.format(records, 0.0), n=20) / len(records)
request_part = timed(count)
metrics.fold()
print(json.dumps({"metrics_us": request_part + min(folded() for _ in range(5)), "access_us": request + line}))
'''


def per_request_costs(serve: Path) -> dict:
    """The metrics' and the access log's own time per request (its part and the formatting of its line),
    timed in-process (best of 5)."""
    out = subprocess.run([str(serve.parent / "python"), "-c", PER_REQUEST], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def request_safe(path: str) -> int:
    try:
        return request("GET", path, timeout=2)[0]
    except (OSError, http.client.HTTPException):
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--reps", type=int, default=3, help="load reps per config (fresh server each)")
    ap.add_argument("--cold", type=int, default=3, help="cold starts per config")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--serve", default=None, help="a `serve` to measure instead of this checkout in its own venv")
    ap.add_argument("--baseline", default=None,
                    help="another `serve` (e.g. main's), measured as config `baseline` interleaved with `toolkit`")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    names = args.configs.split(",")
    paths = setup(Path(args.serve) if args.serve else None)
    cfgs = configs(paths)
    if args.baseline:  # a change measured against what it changes, in one run
        for name in [n for n in names if n.startswith("toolkit")]:  # each `serve` config, with the other `serve`
            cfgs["baseline" + name[7:]] = dict(cfgs[name], argv=[args.baseline])
            names.append("baseline" + name[7:])
    logs = WORK / "logs"
    logs.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = (logs / f"serving-{stamp}.log").open("ab")
    results: list = []

    def emit(record: dict) -> None:
        results.append(record)
        print(json.dumps(record), flush=True)

    load_before = os.getloadavg()
    for i in range(args.cold):
        for name in names:
            log.write(f"\n==== cold {name} {i}\n".encode())
            proc, started = start(cfgs[name], log)
            try:
                emit({"kind": "cold", "config": name, "ping_s": round(wait_ready(proc, started), 3)})
            finally:
                stop(proc)
    for rep in range(args.reps):
        # each rep starts one config further on: a config that always ran right after the Java peer
        # (MMS winding down) measured ~10 % slower whatever it was; and every other rep runs them in
        # reverse, so that no config always follows the same one
        shift = (rep * 3) % len(names)
        order = names[shift:] + names[:shift]
        for name in order[::-1] if rep % 2 else order:
            log.write(f"\n==== load {name} {rep}\n".encode())
            proc, started = start(cfgs[name], log)
            try:
                wait_ready(proc, started)
                sampler = Sampler(proc.pid)
                sampler.start()
                wrk(2, 16, 3, paths["files"], log)
                record = {"kind": "load", "config": name, "rep": rep}
                for threads, conns in ((2, 16), (1, 1)):
                    cpu, switches = session_cpu(proc.pid), session_switches(proc.pid)
                    record[f"c{conns}"] = result = wrk(threads, conns, args.duration, paths["files"], log)
                    result["switches"] = round((session_switches(proc.pid) - switches) / max(result["requests"], 1), 2)
                    # the server's own CPU per answer: less sensitive to the machine's other work than req/s
                    result["cpu_us"] = round((session_cpu(proc.pid) - cpu) * 1e6 / max(result["requests"], 1), 1)
                sampler.done.set()
                sampler.join()
                record["rss_mb"] = round(sampler.peak / 1024, 1)
                record["procs"] = len(session_pids(proc.pid))
            finally:
                stop(proc)
            emit(record)
    csv = csv_memory(paths, log) if "toolkit" in names else None
    if csv:
        emit({"kind": "csv", **csv})
        emit({"kind": "costs", **per_request_costs(paths["serve"])})
    log.close()
    per_request = next((r for r in results if r["kind"] == "costs"), None)
    report = summarize(results, names, args, csv, (load_before, os.getloadavg()), per_request)
    print("\n" + report)
    if not args.no_docs:
        write_docs(report)


def summarize(results: list, names: list, args, csv, loadavg, per_request=None) -> str:
    def med(values):
        return statistics.median(values) if values else float("nan")

    rows = {}
    for name in names:
        loads = [r for r in results if r["kind"] == "load" and r["config"] == name]
        colds = [r["ping_s"] for r in results if r["kind"] == "cold" and r["config"] == name]
        rows[name] = {
            "rps16": med([r["c16"]["rps"] for r in loads]), "p99_16": med([r["c16"]["p99_us"] / 1000 for r in loads]),
            "p50_16": med([r["c16"]["p50_us"] / 1000 for r in loads]), "rps1": med([r["c1"]["rps"] for r in loads]),
            "p99_1": med([r["c1"]["p99_us"] / 1000 for r in loads]), "rss": med([r["rss_mb"] for r in loads]),
            "cold": med(colds), "errors": sum(r["c16"]["errors"] + r["c1"]["errors"] for r in loads),
            "procs": max([r["procs"] for r in loads], default=0),
            "cpu16": med([r["c16"].get("cpu_us", float("nan")) for r in loads]),
            "sw16": med([r["c16"].get("switches", float("nan")) for r in loads]),
        }
    label = {"toolkit": "`serve` (this project, 2 workers)", "mms": "AWS inference toolkit on MMS",
             "waitress": "Flask on 1 waitress process", "gunicorn": "Flask on gunicorn, 2 sync workers",
             "toolkit-nolog": "`serve`, TOOLKIT_ACCESS_LOG=false",
             "toolkit-metrics": "`serve`, TOOLKIT_METRICS_PORT set",
             "toolkit-gil1": "`serve`, TOOLKIT_GIL_SWITCH_MS=1",
             "toolkit-handoff0": "`serve`, TOOLKIT_LOOP_HANDOFF_MS=0 (waitress's hand-off)"}
    out = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/bench_serving.py` on this machine "
        f"({os.cpu_count()} CPUs, shared with wrk and with other work: compare ratios from the same run, not "
        f"absolutes). JSON echo model, 99-byte body; medians of {args.reps} load runs ({args.duration} s each, "
        f"fresh server each, configs interleaved) and {args.cold} cold starts. Load average (1 min) "
        f"{loadavg[0][0]:.1f} at the start and {loadavg[1][0]:.1f} at the end: the higher, the noisier.",
        "",
        "| server | req/s, 16 conn | p50 / p99 ms, 16 conn | req/s, 1 conn | p99 ms, 1 conn | first /ping 200 (s) "
        "| RSS, all processes (MB) | processes | server CPU per answer, 16 conn (us) "
        "| context switches per answer, 16 conn | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        r = rows[name]
        out.append(f"| {label.get(name, name)} | {r['rps16']:,.0f} | {r['p50_16']:.1f} / {r['p99_16']:.1f} "
                   f"| {r['rps1']:,.0f} | {r['p99_1']:.1f} | {r['cold']:.2f} | {r['rss']:.0f} | {r['procs']} "
                   f"| {r['cpu16']:.0f} | {r['sw16']:.1f} | {r['errors']} |")
    if "toolkit" in rows:
        t = rows["toolkit"]
        out += ["", "Ratios (`serve` / peer, same run):", "",
                "| peer | throughput, 16 conn | throughput, 1 conn | p99, 16 conn | cold start | RSS |",
                "| --- | --- | --- | --- | --- | --- |"]
        for name in names:
            if name.startswith("toolkit"):
                continue
            p = rows[name]
            out.append(f"| {label.get(name, name)} | {t['rps16'] / p['rps16']:.2f}x | {t['rps1'] / p['rps1']:.2f}x "
                       f"| {t['p99_16'] / p['p99_16']:.2f}x | {t['cold'] / p['cold']:.2f}x "
                       f"| {t['rss'] / p['rss']:.2f}x |")
        targets = [f"- throughput at least 2x the AWS toolkit's: {t['rps16'] / rows['mms']['rps16']:.2f}x"
                   if "mms" in rows else "",
                   f"- throughput at least 1.2x gunicorn's: {t['rps16'] / rows['gunicorn']['rps16']:.2f}x"
                   if "gunicorn" in rows else "",
                   f"- p99 under 10 ms at 16 connections: {t['p99_16']:.1f} ms",
                   f"- first /ping 200 within 0.3 s of start: {t['cold']:.2f} s",
                   f"- RSS at most a fifth of the AWS toolkit's: {t['rss'] / rows['mms']['rss']:.2f}"
                   if "mms" in rows else ""]
        costs = {"toolkit-nolog": "the access log (on by default) costs {:.1%} of throughput at 16 connections "
                                  "(`serve` against `serve` with TOOLKIT_ACCESS_LOG=false; target: under 5 %)",
                 "toolkit-metrics": "metrics on cost {:.1%} of throughput at 16 connections (target: under 3 %; "
                                    "runs one after the other are within the machine's drift: see Paired costs)"}
        for name, text in costs.items():
            if name in rows:
                slow, fast = (t, rows[name]) if name == "toolkit-nolog" else (rows[name], t)
                targets.append("- " + text.format(1 - slow["rps16"] / fast["rps16"]) +
                               f"; server CPU per answer {slow['cpu16'] / fast['cpu16'] - 1:+.1%}")
        if per_request:
            budget = 2e6 / t["rps16"]  # CPU microseconds per request at 16 connections, the server's and wrk's
            targets.append(f"- timed in-process (best of 5, free of the machine's noise): the metrics take "
                           f"{per_request['metrics_us']:.2f} us (the request's part and its folding) "
                           f"and the access log {per_request['access_us']:.2f} us "
                           f"(the request's part and the formatting of its line) "
                           f"per request, against {budget:.0f} us of CPU per request (server and wrk) at 16 "
                           f"connections: {per_request['metrics_us'] / budget:.1%} and "
                           f"{per_request['access_us'] / budget:.1%} of it")
        if "gunicorn" in rows:
            targets.append(f"- p99 at 16 connections no worse than gunicorn's: {t['p99_16']:.1f} ms against "
                           f"{rows['gunicorn']['p99_16']:.1f} ms" + (
                               f" (with a 1 ms GIL switch interval: {rows['toolkit-gil1']['p99_16']:.1f} ms)"
                               if "toolkit-gil1" in rows else "") + (
                               f" (with every request handed to a request thread: "
                               f"{rows['toolkit-handoff0']['p99_16']:.1f} ms)" if "toolkit-handoff0" in rows else ""))
        out += ["", "Targets from the serving issues, as measured in this run:", "", *[x for x in targets if x]]
    if csv:
        out += ["", f"8 MB CSV body (`serve`, one worker, 10 numeric columns, decoded to a numpy array): the "
                    f"worker's peak RSS rose {csv['extra_mb']} MB over its resting {csv['resting_mb']} MB for a "
                    f"{csv['body_mb']} MB body, {csv['extra_x_body']}x the body size (HTTP {csv['status']}, "
                    f"answer {csv['answer']}). waitress spools bodies over 512 KB to a temporary file, so the body "
                    f"is in memory once, as the bytes the codec reads."]
    return "\n".join(out)


def write_docs(report: str) -> None:
    write_section("## Serving\n\n" + textwrap.dedent(report).strip() + "\n")


if __name__ == "__main__":
    main()
