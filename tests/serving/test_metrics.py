"""Metrics (TOOLKIT_METRICS_PORT), the access log, worker recycling and the GIL switch interval,
seen from outside: the real `serve` with 2 workers, scraped over HTTP, its log read, its workers killed
or recycled under load."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time

import serving_helpers
from helpers import free_port, wait_for
from serving_helpers import Server, scrape, scrape_when

start_server = serving_helpers.start_server  # the fixture

COUNTED = """
    import os

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        return {"pid": os.getpid(), "data": data}
"""
OK = 'toolkit_requests_total{model="model",status="200"}'


def metrics_server(start_server, **variables: str) -> tuple[Server, int]:
    port = free_port()
    return start_server(COUNTED, TOOLKIT_METRICS_PORT=str(port), **variables), port


def test_metrics_totals_equal_what_was_sent(start_server) -> None:
    server, port = metrics_server(start_server)
    for i in range(20):
        assert server.invoke(str(i)).status == 200
    for _ in range(3):
        assert server.invoke("1", content_type="application/x-unknown").status == 415
    seen = scrape_when(port, {OK: 20, 'toolkit_requests_total{model="model",status="415"}': 3})
    assert seen[OK] == 20
    assert seen['toolkit_requests_total{model="model",status="415"}'] == 3
    assert seen['toolkit_request_duration_seconds_count{model="model"}'] == 23
    assert seen['toolkit_request_duration_seconds_bucket{model="model",le="+Inf"}'] == 23
    assert seen['toolkit_requests_in_flight{model="model"}'] == 0
    assert seen['toolkit_model_load_seconds_count{model="model"}'] == 2  # each of the 2 workers loaded it
    assert "toolkit_batch_size_count" not in str(seen)  # not batched: no batch series


THREADED = """
    import os
    import threading
    import time

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        time.sleep(0.002)  # long enough for the clients' requests to overlap on a worker's threads
        return {"pid": os.getpid(), "thread": threading.get_ident()}
"""


def invoke_concurrently(server: Server, clients: int, each: int) -> set:
    """``clients`` kept-alive connections, ``each`` requests on each; the (pid, thread) that answered."""
    seen: set = set()
    failures: list = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            for i in range(each):
                conn.request("POST", "/invocations", body=str(i).encode(), headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    failures.append((resp.status, body))
                    continue
                answer = json.loads(body)
                seen.add((answer["pid"], answer["thread"]))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return seen


def test_counts_from_many_request_threads_add_up_across_a_crash(start_server) -> None:
    """Answers from many request threads of a worker, appended without a lock and folded into the
    shared table by one thread: totals equal what was sent, each series is one line (lanes summed),
    and a killed worker's folded counts stay. (TOOLKIT_LOOP_HANDOFF_MS=0: every request on a request
    thread; the event loop would answer these quick ones on its own thread.)"""
    port = free_port()
    server = start_server(THREADED, TOOLKIT_METRICS_PORT=str(port), TOOLKIT_LOOP_HANDOFF_MS="0")
    answered = invoke_concurrently(server, 8, 25)
    per_worker: dict = {}
    for pid, thread in answered:
        per_worker.setdefault(pid, set()).add(thread)
    assert max(len(threads) for threads in per_worker.values()) >= 2, per_worker  # answered by several threads
    scrape_when(port, {OK: 200})
    text = raw_scrape(port)
    lines = [line.rpartition(" ")[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == len(set(lines)), text  # the lanes are summed, not listed
    seen = scrape(port)
    assert seen[OK] == 200
    assert seen['toolkit_request_duration_seconds_count{model="model"}'] == 200
    assert seen['toolkit_request_duration_seconds_bucket{model="model",le="+Inf"}'] == 200
    assert seen['toolkit_requests_in_flight{model="model"}'] == 0
    victim = next(iter(per_worker))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2, 30,
             "the killed worker to be replaced")
    server.wait_ready()
    invoke_concurrently(server, 8, 10)
    seen = scrape_when(port, {OK: 280})
    assert seen[OK] == 280  # the dead worker's lanes still count; the replacement's add to them
    assert seen['toolkit_request_duration_seconds_count{model="model"}'] == 280
    assert seen['toolkit_requests_in_flight{model="model"}'] == 0


def raw_scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_metrics_survive_a_worker_crash(start_server) -> None:
    server, port = metrics_server(start_server)
    pids = {server.invoke(str(i)).json()["pid"] for i in range(30)}
    assert scrape_when(port, {OK: 30})[OK] == 30  # folded into the shared table (within 50 ms)
    victim = pids.pop() if pids else server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2, 30,
             "the killed worker to be replaced")
    server.wait_ready()
    for i in range(10):
        assert server.invoke(str(i)).status == 200
    seen = scrape_when(port, {OK: 40})
    assert seen[OK] == 40  # the dead worker's 200s are still counted
    assert seen['toolkit_requests_in_flight{model="model"}'] == 0
    assert seen['toolkit_model_load_seconds_count{model="model"}'] == 3  # 2 workers, then the replacement


def test_recycling_under_load_drops_no_request_and_keeps_the_counts(start_server) -> None:
    server, port = metrics_server(start_server, TOOLKIT_MAX_REQUESTS="60", TOOLKIT_MAX_REQUESTS_JITTER="20")
    first = set(server.worker_pids())
    failures: list = []
    pids: set = set()
    pings: list = []
    stop = threading.Event()

    sent: list = []
    deadline = time.monotonic() + 60

    def client(n: int) -> None:  # a kept-alive connection, as SageMaker's front end keeps them
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        i = 0
        # n requests, and on until two replacements have answered (a fast run can end before the
        # second recycling is through)
        while i < n or (len(pids - first) < 2 and time.monotonic() < deadline):
            i += 1
            sent.append(1)
            try:
                conn.request("POST", "/invocations", body=str(i).encode(), headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    failures.append((resp.status, body))
                else:
                    pids.add(json.loads(body)["pid"])
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
        conn.close()

    def pinger() -> None:
        while not stop.is_set():
            pings.append(server.ping())
            stop.wait(0.02)

    watcher = threading.Thread(target=pinger)
    watcher.start()
    clients = [threading.Thread(target=client, args=(100,)) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    stop.set()
    watcher.join()
    assert failures == []
    assert pings and set(pings) == {200}
    assert len(pids - first) >= 2, (pids, first)  # answers came from the replacements too
    assert re.search(r"worker \d+ asks to be replaced: it has answered \d+ requests \(TOOLKIT_MAX_REQUESTS\)",
                     server.log)
    # a drained worker exits once its last client has closed: that can be after the clients are done
    wait_for(lambda: re.search(r"worker \d+ recycled \(exited with code 0\)", server.log), 30,
             "a recycled worker's exit")
    # the scrape may come before a drained worker has exited (and been counted as recycled)
    seen = wait_for(lambda: (s := scrape(port)) and s[OK] == len(sent) and s["toolkit_workers_recycled_total"] >= 2
                    and s, 30, "every request to be counted, two workers recycled")
    assert seen['toolkit_requests_in_flight{model="model"}'] == 0
    wait_for(lambda: len(server.worker_pids()) == 2, 30, "as many workers as configured, the recycled ones gone")


LEAKING = """
    import os

    kept = []

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        kept.append(bytearray(20 * 1024 * 1024))  # 20 MB per request, never given back
        for block in kept[-1:]:
            block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
        return {"pid": os.getpid()}
"""


def test_a_worker_past_the_rss_limit_is_replaced(start_server) -> None:
    server = start_server(LEAKING, SAGEMAKER_MODEL_SERVER_WORKERS="1", TOOLKIT_MAX_RSS_MB="150")
    first = server.invoke("1").json()["pid"]

    def replaced() -> bool:
        answer = server.invoke("1")
        assert answer.status == 200, answer
        return answer.json()["pid"] != first

    wait_for(replaced, 60, "the leaking worker to be replaced")
    assert re.search(r"asks to be replaced: its RSS is \d+ MB, over TOOLKIT_MAX_RSS_MB=150", server.log)


def test_access_log_lines(start_server) -> None:
    server = start_server(COUNTED)
    assert server.invoke("[1]", X_Amzn_SageMaker_Inference_Id="req-42").status == 200
    assert server.invoke("1", content_type="application/x-unknown").status == 415
    assert server.ping() == 200
    assert server.request("GET", "/nowhere").status == 404
    pattern = r"toolkit INFO (127\.0\.0\.1 \S+ \S+ \d+ \S+ [\d.]+ms model=\S+ id=\S+)"
    # each worker writes its own lines (every 0.2 s): the two workers' lines may come in either order
    lines = sorted(wait_for(lambda: len(found := re.findall(pattern, server.log)) >= 3 and found, 10, "the lines"))
    assert re.fullmatch(r"127\.0\.0\.1 GET /nowhere 404 \d+ [\d.]+ms model=- id=-", lines[0])
    assert re.fullmatch(r"127\.0\.0\.1 POST /invocations 200 \d+ [\d.]+ms model=model id=req-42", lines[1])
    assert re.fullmatch(r"127\.0\.0\.1 POST /invocations 415 \d+ [\d.]+ms model=model id=-", lines[2])
    assert len(lines) == 3  # /ping is not logged (TOOLKIT_LOG_PING)
    assert re.search(r"model loaded in process \d+ in [\d.]+ s", server.log)  # the load line, with its time


ANSWERS_OF_EACH_KIND = """
    import time

    def model_fn(model_dir):
        return "model"

    def tokens():
        yield "one"
        yield "two"

    def predict_fn(data, model):
        if data == "stream":
            return tokens()
        if data == "hang":
            time.sleep(1.5)  # past the 1 s time limit: answered 504 by the server
        if data == "slow":
            time.sleep(0.06)
        return data
"""
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) toolkit INFO 127\.0\.0\.1 (\S+) (\S+) (\d+) (\S+) "
                  r"([\d.]+)ms model=(\S+) id=(\S+)$", re.M)


def test_access_lines_keep_every_field_their_order_and_are_written_at_stop(start_server) -> None:
    """The lines are formatted away from the request (from the raw fields it kept): each still says
    when it was answered (wall clock), how long it took, its status (504 for the time limit's), its
    size (- for a stream) and ids, in the order answered; those still buffered at SIGTERM are written."""
    server = start_server(ANSWERS_OF_EACH_KIND, SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
    before = time.time()
    for i in range(30):
        assert server.invoke('"fast"', X_Amzn_SageMaker_Inference_Id=f"fast-{i}").status == 200
    assert server.invoke('"slow"', X_Amzn_SageMaker_Inference_Id="slow").status == 200
    streamed = server.invoke('"stream"', accept="text/event-stream", X_Amzn_SageMaker_Inference_Id="stream")
    assert streamed.status == 200 and b"two" in streamed.body
    assert server.invoke('"hang"', X_Amzn_SageMaker_Inference_Id="hang").status == 504
    for i in range(30, 60):
        assert server.invoke('"fast"', X_Amzn_SageMaker_Inference_Id=f"fast-{i}").status == 200
    time.sleep(0.6)  # the hanging call ends (its line is made then)
    assert server.invoke('"fast"', X_Amzn_SageMaker_Inference_Id="last").status == 200
    after = time.time()
    assert server.stop() == 0  # at once: "last" is still buffered
    lines = {m[8]: m for m in LINE.findall(server.log)}
    order = [m[8] for m in LINE.findall(server.log)]
    assert order == [f"fast-{i}" for i in range(30)] + ["slow", "stream"] + [f"fast-{i}" for i in range(30, 60)] + [
        "hang", "last"], order
    for ident, (stamp, millis, method, path, _status, _size, _took, model, _) in lines.items():
        answered = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
        assert before - 0.01 <= answered <= after + 0.01, (ident, stamp, millis, before, after)
        assert (method, path, model) == ("POST", "/invocations", "model")
    assert lines["fast-0"][4:6] == ("200", "6")  # '"fast"'
    assert lines["slow"][4] == "200" and float(lines["slow"][6]) >= 60
    assert lines["stream"][4:6] == ("200", "-")
    assert lines["hang"][4] == "504" and float(lines["hang"][6]) >= 1500


def test_latency_buckets_and_status_counts_come_from_one_series_per_answer(start_server) -> None:
    """An answer is counted once, by status and latency bucket; the scrape sums those into the counts
    by status and the histogram: each bucket holds what took at most its bound, count and +Inf all."""
    port = free_port()
    server = start_server(ANSWERS_OF_EACH_KIND, TOOLKIT_METRICS_PORT=str(port))
    for _ in range(3):
        assert server.invoke('"fast"').status == 200
    for _ in range(4):
        assert server.invoke('"slow"').status == 200  # 60 ms each
    for _ in range(2):
        assert server.invoke("1", content_type="application/x-unknown").status == 415
    seen = scrape_when(port, {OK: 7, 'toolkit_requests_total{model="model",status="415"}': 2})
    assert seen[OK] == 7 and seen['toolkit_requests_total{model="model",status="415"}'] == 2
    bucket = 'toolkit_request_duration_seconds_bucket{{model="model",le="{}"}}'.format
    assert seen[bucket("0.05")] <= 5  # never a slow one
    assert seen[bucket("60")] == seen[bucket("+Inf")] == 9
    assert seen['toolkit_request_duration_seconds_count{model="model"}'] == 9
    assert seen['toolkit_request_duration_seconds_sum{model="model"}'] >= 4 * 0.06
    bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    counts = [seen[bucket(f"{b:g}")] for b in bounds]
    assert counts == sorted(counts)  # cumulative


def test_access_log_can_be_turned_off(start_server) -> None:
    server = start_server(COUNTED, TOOLKIT_ACCESS_LOG="false")
    assert server.invoke("[1]").status == 200
    assert server.request("GET", "/nowhere").status == 404
    server.stop()
    assert "POST /invocations" not in server.log and "/nowhere" not in server.log
    assert "model loaded in process" in server.log


def test_workers_hand_the_gil_over_as_often_as_set(start_server) -> None:
    switch = "import sys\n\ndef model_fn(model_dir):\n    return 1\n\ndef predict_fn(data, model):\n" \
             "    return sys.getswitchinterval()\n"
    assert start_server(switch).invoke("1").json() == 0.005  # Python's own, by default
    assert start_server(switch, TOOLKIT_GIL_SWITCH_MS="1").invoke("1").json() == 0.001


HELD = """
    import os
    import time

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        while not os.path.exists(os.environ["RELEASE"]):  # held until the test lets go
            time.sleep(0.01)
        return data
"""
IN_FLIGHT = 'toolkit_requests_in_flight{model="model"}'


def test_the_in_flight_gauge_counts_the_requests_being_answered(start_server, tmp_path) -> None:
    """The gauge follows the requests a handler is still working on, over both workers, and falls
    back to 0 once they are answered."""
    port = free_port()
    release = tmp_path / "release"
    server = start_server(HELD, TOOLKIT_METRICS_PORT=str(port), RELEASE=str(release))
    statuses: list = []
    clients = [threading.Thread(target=lambda: statuses.append(server.invoke("1").status)) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        assert scrape_when(port, {IN_FLIGHT: 3})[IN_FLIGHT] == 3
    finally:
        release.touch()
        for client in clients:
            client.join()
    assert statuses == [200] * 3
    seen = scrape_when(port, {IN_FLIGHT: 0, OK: 3})
    assert (seen[IN_FLIGHT], seen[OK]) == (0, 3)


def test_answers_count_once_folded_and_an_apps_gauge_goes_with_it() -> None:
    """In-process: an answer reaches the table at the next fold, not before (the request only appends
    it); the gauge is the tracked apps' own count, and a model whose app is gone (a multi-model
    endpoint unloaded it) stops being tracked, its gauge left at 0."""
    import gc

    from toolkit.serving.metrics import Metrics

    class App:
        inflight = 2

    table = Metrics(1)
    table.bind(0)
    app = App()
    table.track("m", app)
    table.answered(("m", 200, 0.003))
    table.answered(("m", 503, 0.2))
    assert ("toolkit_requests_total", "m", "200") not in table.totals()
    table.fold()
    totals = table.totals()
    assert totals[("toolkit_requests_total", "m", "200")] == totals[("toolkit_requests_total", "m", "503")] == 1
    assert totals[("toolkit_request_duration_seconds", "m", "sum")] == 0.203
    assert totals[("toolkit_requests_in_flight", "m", "")] == 2
    app.inflight = 0
    table.fold()
    assert table.totals()[("toolkit_requests_in_flight", "m", "")] == 0
    app.inflight = 5
    del app
    gc.collect()
    table.fold()
    assert table._tracked == {} and table.totals()[("toolkit_requests_in_flight", "m", "")] == 0
