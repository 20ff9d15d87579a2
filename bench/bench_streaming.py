#!/usr/bin/env python3
"""Response streaming benchmark: time to first chunk of `serve` and of a plain Flask streaming app on
waitress, side by side in one run; results into docs/benchmarks.md (## Response streaming).

Both run the same generator: 5 chunks of 16 bytes, the first at once, then one every 100 ms.
`toolkit` is this checkout's `serve` (1 worker, from the Python running this script, which must have
the package installed: the dev venv), as plain chunks and as server-sent events (Accept:
text/event-stream); `flask` is `Response(generator)` on waitress with the same thread count.
Each request is a fresh connection: time from sending the request to the first body byte, and to the
end of the body.

    .venv/bin/python bench/bench_streaming.py              # ~80 s; writes docs/benchmarks.md
    .venv/bin/python bench/bench_streaming.py --no-docs    # print only
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import write_section

from toolkit.testing import clean_environ, free_port

ROOT = Path(__file__).resolve().parent.parent
CHUNKS, GAP = 5, 0.1

INFERENCE = f'''
import time


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    for i in range({CHUNKS}):
        if i:
            time.sleep({GAP})
        yield "chunk %09d\\n" % i
'''

FLASK = f'''
import sys, time
from flask import Flask, Response
import waitress

app = Flask("peer")


@app.post("/invocations")
def invocations():
    def chunks():
        for i in range({CHUNKS}):
            if i:
                time.sleep({GAP})
            yield "chunk %09d\\n" % i
    return Response(chunks(), mimetype="text/plain")


waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=4)
'''


def wait_port(port: int, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                if b" 200 " in s.recv(64) or path == "/":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"server on {port} never answered")


def one_request(port: int, accept: str) -> tuple[float, float]:
    request = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\n"
               b"Content-Length: 2\r\nConnection: close\r\n\r\n{}" % accept.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.perf_counter()
        s.sendall(request)
        data, first = b"", None
        while True:
            part = s.recv(65536)
            if not part:
                break
            data += part
            if first is None and b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1]:
                first = time.perf_counter() - start
        total = time.perf_counter() - start
    assert b"chunk 000000004" in data, data
    return first or total, total


def measure(port: int, accept: str, n: int) -> dict[str, float]:
    for _ in range(3):
        one_request(port, accept)
    firsts, totals = zip(*(one_request(port, accept) for _ in range(n)))
    q = statistics.quantiles(firsts, n=20)
    return {"first_p50": statistics.median(firsts) * 1e3, "first_p95": q[18] * 1e3,
            "total_p50": statistics.median(totals) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "model" / "code").mkdir(parents=True)
        (base / "model" / "code" / "inference.py").write_text(INFERENCE)
        (base / "peer.py").write_text(FLASK)
        port, peer_port = free_port(), free_port()
        env = clean_environ(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(port),
                            TOOLKIT_BIND_HOST="127.0.0.1", SAGEMAKER_MODEL_SERVER_WORKERS="1",
                            TOOLKIT_SERVER_THREADS="4")
        serve = Path(sys.executable).parent / "serve"
        procs = [subprocess.Popen([str(serve)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                 subprocess.Popen([sys.executable, str(base / "peer.py"), str(peer_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            wait_port(port, "/ping")
            wait_port(peer_port, "/")
            for _ in range(2):  # interleaved rounds, the last one kept
                results["toolkit, chunks"] = measure(port, "text/plain", args.n)
                results["toolkit, server-sent events"] = measure(port, "text/event-stream", args.n)
                results["flask on waitress"] = measure(peer_port, "text/plain", args.n)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=35)
    lines = [
        "## Response streaming",
        "",
        f"`bench/bench_streaming.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. A generator of {CHUNKS} chunks, the first "
        f"at once, then one every {GAP * 1000:.0f} ms; {args.n} requests per server, each on a new connection; "
        "`serve` with 1 worker and 4 threads, Flask's `Response(generator)` on waitress with 4 threads.",
        "",
        "| server | first chunk p50 (ms) | first chunk p95 (ms) | whole body p50 (ms) |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['first_p50']:.2f} | {r['first_p95']:.2f} | {r['total_p50']:.1f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_docs:
        write_section(section)


if __name__ == "__main__":
    main()
