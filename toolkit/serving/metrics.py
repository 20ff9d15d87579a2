"""Prometheus metrics of a `serve` process tree, summed over its workers (TOOLKIT_METRICS_PORT).

Why not prometheus_client's multiprocess mode: it keeps one set of files per process id, so with
worker recycling (TOOLKIT_MAX_REQUESTS) the files, and the time to read them on every scrape, grow
with every replaced worker; and each update takes a lock and packs a struct into a file-backed
mmap (several microseconds per request). Here the supervisor makes, before forking, one anonymous
shared-memory table with a fixed region per worker slot (the slots of ``toolkit.serving.balance``)
plus one for itself. A worker writes only to its own slot's region; a replacement worker takes a
free slot and carries on from the counts already in it, so nothing is lost or double counted when a
worker dies or is recycled, and the table never grows. The supervisor sums the slots when scraped.

A region is a list of series: a key (metric, model, one more label, lane) and a float. A lane is one
thread of the process: each thread that records (the one that folds the answers, below; a batch's;
a model's load) gets its own lane number and writes only its own series, so every float has exactly
one writer and an update is a plain ``+=`` with no lock. The scrape sums the lanes (and the slots).
A thread's lane number goes back to a free list when the thread ends, and a replacement worker
numbers its lanes from 0 again, so the series in a slot are bounded by the threads that record at
once. A thread finds its series' positions once; only making a new series takes the lock.
Histograms are stored as one count per bucket, made cumulative when rendered (the count is their
sum), so a bucket that was never hit costs no series. In-flight counts are zeroed when a worker
exits (its requests went with it). When a region is full (16,384 series: a model takes up to ~20
per lane), new series are dropped and a warning is logged once.

What a request costs: one ``deque.append`` of (model, status, seconds) (``Metrics.answered``). A
thread of the worker (``FOLD_EVERY``) folds what was appended into the table, where an answer adds
two floats: one *answer* series, which counts the answers of one status in one latency bucket (the
scrape sums them into ``toolkit_requests_total`` by status and the latency histogram's buckets and
count), and the latency's sum. The same thread sets the in-flight gauge from the apps' own counts
(``Metrics.track``), so a request adds nothing else. Updating the table on the request path, as this
module did before, took 0.75 us timed alone but cost ~5 % of the echo benchmark's throughput (its
objects, touched once per request, fall out of the caches between two requests); folded in bulk it
costs what ``bench/bench_pair.py`` measures (docs/benchmarks.md). The price: a scrape sees an answer
up to ``FOLD_EVERY`` late, and a worker killed by a signal (SIGKILL, a crash in C) loses the answers
of its last ``FOLD_EVERY`` at most; a worker that stops (SIGTERM, recycling) folds them first.
"""

from __future__ import annotations

import bisect
import logging
import mmap
import threading
import time
import weakref
from collections import deque
from typing import Any, Iterable, Optional

log = logging.getLogger("toolkit")

ENTRIES = 16384  # series per slot (all its lanes); only the pages used are resident
KEY_BYTES = 254  # the key's UTF-8 bytes; model names longer than this (in UTF-8) are cut
SEP = "\x1f"
FOLD_EVERY = 0.05  # seconds between two folds of a worker's answers into the table

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAITS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LOADS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

# name -> (type, help, histogram buckets)
METRICS: dict[str, tuple[str, str, tuple]] = {
    "toolkit_requests_total": ("counter", "Invocations answered, by model and HTTP status.", ()),
    "toolkit_request_duration_seconds": ("histogram", "Time from receiving an invocation to its response "
                                         "(a streamed one: to its end), by model.", LATENCY),
    "toolkit_requests_in_flight": ("gauge", "Invocations being answered now, by model.", ()),
    "toolkit_batch_size": ("histogram", "Requests per batch call (dynamic batching), by model.", SIZES),
    "toolkit_batch_queue_seconds": ("histogram", "Time a request waited for its batch call to start "
                                    "(dynamic batching), by model.", WAITS),
    "toolkit_model_load_seconds": ("histogram", "Time model_fn (and its pre/warm-up functions) took, "
                                   "one observation per process that loaded the model.", LOADS),
    "toolkit_workers_recycled_total": ("counter", "Workers replaced after TOOLKIT_MAX_REQUESTS or "
                                       "TOOLKIT_MAX_RSS_MB.", ()),
}
LATENCY_METRIC = "toolkit_request_duration_seconds"
# not rendered as such: answers by status and latency bucket, label "STATUS BUCKET" (ModelSeries.finished)
ANSWERS = "toolkit_answers"
GAUGES = frozenset(name for name, (kind, _, _) in METRICS.items() if kind == "gauge")


Key = tuple[str, str, str, str]  # (metric, model, label, lane)


class Metrics:
    """The shared table (made before forking) and this process's view of its own slot."""

    def __init__(self, slots: int) -> None:
        self.slots = slots  # worker slots; the supervisor writes to slot ``slots`` (one more)
        total = (slots + 1) * ENTRIES
        self._memory = mmap.mmap(-1, total * (8 + 2 + KEY_BYTES))  # MAP_SHARED | MAP_ANONYMOUS
        view = memoryview(self._memory)
        self._values = view[: total * 8].cast("d")
        self._lengths = view[total * 8: total * 10].cast("H")
        self._keys = view[total * 10:]
        self._lock = threading.Lock()  # making a series, taking a lane: never on the per-request path
        self._decoded: dict[int, Key] = {}  # position -> key (keys never change)
        self._pending: deque[tuple[str, int, float]] = deque()  # answers not folded yet
        self.answered = self._pending.append  # the request's one call: (model, status, seconds)
        self._tracked: dict[str, weakref.WeakSet] = {}  # model -> apps whose ``inflight`` is its gauge
        self._fold_lock = threading.Lock()
        self.bind(slots)

    # -- writing (in a worker, or in the supervisor) ---------------------------------------------

    def bind(self, slot: int) -> None:
        """Write to ``slot`` from now on (in a new worker, after fork); series already there are reused."""
        self._slot = slot
        self._base = slot * ENTRIES
        self._index: dict[Key, int] = {}
        self._local = threading.local()  # this thread's lane: {model name: ModelSeries}
        self._lanes = 0  # lane numbers given out so far in this process
        self._free: list[int] = []  # lanes of threads that have ended
        self._full_warned = False
        self._pending.clear()  # (the supervisor answers nothing; this is for a worker's fresh start)
        self._gauges: dict[str, tuple[int, float]] = {}  # model -> (in-flight position, value written)
        for i in range(ENTRIES):
            key = self._key(self._base + i)
            if key is None:
                break
            self._index[key] = self._base + i
        self._used = len(self._index)

    def model(self, name: str) -> ModelSeries:
        """The series of one model for the calling thread (made on its first use in this thread)."""
        try:
            return self._local.models[name]
        except (AttributeError, KeyError):
            return self._new_series(name)

    def track(self, name: str, app: Any) -> None:
        """``app.inflight`` counts requests of model ``name`` in flight: the gauge is the sum of those
        counts over the tracked apps still alive (a multi-model endpoint drops an unloaded model's app)."""
        with self._fold_lock:
            self._tracked.setdefault(name, weakref.WeakSet()).add(app)

    def start_folding(self) -> None:
        """In a worker: fold its answers into the table every ``FOLD_EVERY`` seconds, from a thread."""
        threading.Thread(target=self._fold_forever, name="toolkit-metrics", daemon=True).start()

    def _fold_forever(self) -> None:
        while True:
            time.sleep(FOLD_EVERY)
            try:
                self.fold()
            except Exception:  # never stop folding: the queue would grow without end
                log.exception("metrics: folding the answers failed")

    def fold(self) -> None:
        """Add the answers appended since the last fold to the table (in the calling thread's lane),
        and set the in-flight gauges. Also called when the worker stops, so it loses none."""
        with self._fold_lock:
            pending = self._pending
            series: dict[str, ModelSeries] = {}
            for _ in range(len(pending)):  # answers appended meanwhile wait for the next fold
                model, status, seconds = pending.popleft()
                found = series.get(model)
                if found is None:
                    found = series[model] = self.model(model)
                found.finished(status, seconds)
            for model, apps in list(self._tracked.items()):
                self._set_gauge(model, float(sum(app.inflight for app in list(apps))))
                if not apps:
                    del self._tracked[model]

    def _set_gauge(self, model: str, value: float) -> None:
        at, written = self._gauges.get(model, (-2, 0.0))
        if at == -2:
            at = self.position("toolkit_requests_in_flight", model, "", self.lane())
        if value != written and at >= 0:
            self._values[at] = value
        self._gauges[model] = (at, value)

    def _new_series(self, name: str) -> ModelSeries:
        lane = self.lane()
        series = self._local.models[name] = ModelSeries(self, name, lane)
        return series

    def lane(self) -> str:
        """The calling thread's lane (given on its first call in this process)."""
        local = self._local
        found = getattr(local, "lane", None)
        if found is None:
            with self._lock:
                number = self._free.pop() if self._free else self._lanes
                self._lanes = max(self._lanes, number + 1)
            local.models = {}
            found = local.lane = _Lane(number, self._free)  # gives the number back when the thread's locals go
        return found.name

    def position(self, metric: str, model: str, label: str = "", lane: str = "") -> int:
        """Where a series' value is (made if new); -1 when this slot's region is full."""
        key = (metric, model, label, lane)
        found = self._index.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._index.get(key)
            if found is not None:
                return found
            if self._used >= ENTRIES:
                if not self._full_warned:
                    self._full_warned = True
                    log.warning("metrics: %d series in this worker, the most it keeps; new ones are dropped", ENTRIES)
                return -1
            at = self._base + self._used
            raw = SEP.join((lane, metric, model, label)).encode("utf-8")[:KEY_BYTES]  # a cut spares the lane
            self._keys[at * KEY_BYTES: at * KEY_BYTES + len(raw)] = raw
            self._values[at] = 0.0
            self._lengths[at] = len(raw)  # last: a reader sees the whole key or none
            self._used += 1
            self._index[key] = at
            return at

    def count(self, metric: str, model: str = "", label: str = "", amount: float = 1.0) -> None:
        """Add to a series named by its key, in the calling thread's lane (not for hot paths)."""
        at = self.position(metric, model, label, self.lane())
        if at >= 0:
            self._values[at] += amount

    def clear_gauges(self, slot: int) -> None:
        """Zero the gauges of ``slot`` (its worker has exited: nothing of it is in flight any more)."""
        for i in range(slot * ENTRIES, (slot + 1) * ENTRIES):
            key = self._key(i)
            if key is None:
                return
            if key[0] in GAUGES:
                self._values[i] = 0.0

    # -- reading (the supervisor, when scraped) --------------------------------------------------

    def _key(self, at: int) -> Optional[Key]:
        key = self._decoded.get(at)
        if key is not None:
            return key
        length = self._lengths[at]
        if not length:
            return None
        text = bytes(self._keys[at * KEY_BYTES: at * KEY_BYTES + length]).decode("utf-8", errors="replace")
        lane, metric, model, label = [*text.split(SEP), "", "", ""][:4]
        key = self._decoded[at] = (metric, model, label, lane)
        return key

    def totals(self) -> dict[tuple[str, str, str], float]:
        """Every series summed over all lanes and slots."""
        sums: dict[tuple[str, str, str], float] = {}
        for slot in range(self.slots + 1):
            for i in range(slot * ENTRIES, (slot + 1) * ENTRIES):
                key = self._key(i)
                if key is None:
                    break
                series = key[:3]
                sums[series] = sums.get(series, 0.0) + self._values[i]
        for (metric, model, label), value in [item for item in sums.items() if item[0][0] == ANSWERS]:
            del sums[(metric, model, label)]
            status, _, bucket = label.partition(" ")
            for series in (("toolkit_requests_total", model, status), (LATENCY_METRIC, model, bucket)):
                sums[series] = sums.get(series, 0.0) + value
        return sums

    def render(self) -> bytes:
        """The Prometheus text format (0.0.4) of the totals."""
        totals = self.totals()
        by_metric: dict[str, dict[tuple[str, str], float]] = {}
        for (metric, model, label), value in totals.items():
            by_metric.setdefault(metric, {})[(model, label)] = value
        out: list[str] = []
        for name, (kind, text, buckets) in METRICS.items():
            series = by_metric.get(name)
            if not series and kind != "counter":
                continue
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            if kind == "histogram":
                out.extend(_histogram(name, buckets, series or {}))
                continue
            label_name = "status" if name == "toolkit_requests_total" else ""
            for (model, label), value in sorted((series or {}).items()):
                out.append(f"{name}{_labels(model, label_name, label)} {_number(value)}")
        return ("\n".join(out) + "\n").encode("utf-8")


class _Lane:
    """A thread's lane number, returned to the free list when the thread ends (its locals are dropped)."""

    def __init__(self, number: int, free: list[int]) -> None:
        self.number = number
        self.name = str(number)
        self._free = free

    def __del__(self) -> None:
        self._free.append(self.number)  # list.append is atomic: no lock in a finalizer


class ModelSeries:
    """One model's series in one thread's lane, with their positions found once. Only that thread
    writes them (a call from another thread goes to that thread's own lane)."""

    def __init__(self, metrics: Metrics, model: str, lane: str) -> None:
        self.metrics = metrics
        self.model = model
        self.lane = lane
        self._owner = threading.get_ident()
        self._values = metrics._values
        self._answers: dict[int, int] = {}  # status * 32 + latency bucket -> position
        self._latency_sum = -2  # made on the first answer (a load alone makes no latency series)
        self._histograms: dict[str, Histogram] = {}

    def histogram(self, metric: str) -> Histogram:
        found = self._histograms.get(metric)
        if found is None:
            found = self._histograms[metric] = Histogram(self, metric, METRICS[metric][2])
        return found

    def finished(self, status: int, seconds: float) -> None:
        """One answer (called by ``Metrics.fold``; a request appends to ``Metrics.answered`` instead)."""
        if self._owner != get_ident():  # e.g. a stream closed by another thread than the one it started on
            return self.metrics.model(self.model).finished(status, seconds)
        values = self._values
        bucket = bisect_left(LATENCY, seconds)
        at = self._answers.get(status * 32 + bucket)
        if at is None:
            at = self._answer_series(status, bucket)
        if at >= 0:
            values[at] += 1
            values[self._latency_sum] += seconds

    def _answer_series(self, status: int, bucket: int) -> int:
        position = self.metrics.position
        if self._latency_sum == -2:
            self._latency_sum = position(LATENCY_METRIC, self.model, "sum", self.lane)
        at = self._answers[status * 32 + bucket] = position(ANSWERS, self.model, f"{status} {bucket}", self.lane)
        if self._latency_sum < 0:  # the region is full: nothing is counted rather than counts without a sum
            at = self._answers[status * 32 + bucket] = -1
        return at

    def observe(self, metric: str, value: float) -> None:
        if self._owner != get_ident():
            return self.metrics.model(self.model).observe(metric, value)
        self.histogram(metric).add(value)

    def observe_many(self, metric: str, values: Iterable[float]) -> None:
        if self._owner != get_ident():
            return self.metrics.model(self.model).observe_many(metric, values)
        add = self.histogram(metric).add
        for value in values:
            add(value)


get_ident = threading.get_ident


class Histogram:
    """Positions of one histogram's buckets (each made when first hit) and its sum, in one lane. Its
    count is the sum of its buckets (made when rendered): one float fewer to add per observation."""

    def __init__(self, series: ModelSeries, metric: str, bounds: tuple) -> None:
        self.metrics = series.metrics
        self.metric = metric
        self.model = series.model
        self.lane = series.lane
        self.bounds = bounds
        self._values = series._values
        self._buckets: list[int] = [-2] * (len(bounds) + 1)  # -2: not made yet; -1: the region is full
        self._sum = self.metrics.position(metric, self.model, "sum", self.lane)

    def add(self, value: float) -> None:
        """One observation (by the lane's own thread: no lock)."""
        index = bisect_left(self.bounds, value)
        at = self._buckets[index]
        if at < 0:
            if at == -1:
                return
            at = self._buckets[index] = self.metrics.position(self.metric, self.model, str(index), self.lane)
            if at < 0:
                return
        values = self._values
        values[at] += 1
        if self._sum >= 0:
            values[self._sum] += value


bisect_left = bisect.bisect_left


def _histogram(name: str, bounds: tuple, series: dict[tuple[str, str], float]) -> list[str]:
    models = sorted({model for model, _ in series})
    lines = []
    for model in models:
        running = 0.0
        for index, bound in enumerate(bounds):
            running += series.get((model, str(index)), 0.0)
            lines.append(f"{name}_bucket{_labels(model, 'le', _number(bound))} {_number(running)}")
        count = running + series.get((model, str(len(bounds))), 0.0)  # the last bucket: above every bound
        lines.append(f"{name}_bucket{_labels(model, 'le', '+Inf')} {_number(count)}")
        lines.append(f"{name}_sum{_labels(model)} {_number(series.get((model, 'sum'), 0.0))}")
        lines.append(f"{name}_count{_labels(model)} {_number(count)}")
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(model: str, name: str = "", value: str = "") -> str:
    pairs = [f'model="{_escape(model)}"'] if model else []
    if name:
        pairs.append(f'{name}="{_escape(value)}"')
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def serve(metrics: Metrics, host: str, port: int) -> Any:
    """Answer GET /metrics (any path) on ``host:port`` from a thread of this process (the supervisor).

    The thread is started with the stop signals blocked, so they keep reaching the main thread,
    which may be blocked in waitpid. Returns the server; ``close_in_child`` after fork."""
    import signal
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        from toolkit.errors import ConfigError

        raise ConfigError(f"cannot serve metrics on {host}:{port} (TOOLKIT_METRICS_PORT): {exc.strerror}") from None
    server.daemon_threads = True
    blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        threading.Thread(target=server.serve_forever, name="toolkit-metrics", daemon=True).start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


def close_in_child(server: Any) -> None:
    """In a new worker: let go of the inherited metrics socket (the supervisor keeps serving it)."""
    if server is not None:
        server.socket.close()


__all__ = ["Metrics", "ModelSeries", "close_in_child", "serve"]
