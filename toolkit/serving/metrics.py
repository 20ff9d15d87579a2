"""Prometheus metrics of a `serve` process tree, summed over its workers (TOOLKIT_METRICS_PORT).

Why not prometheus_client's multiprocess mode: it keeps one set of files per process id, so with
worker recycling (TOOLKIT_MAX_REQUESTS) the files, and the time to read them on every scrape, grow
with every replaced worker; and each update takes a lock and packs a struct into a file-backed
mmap (several microseconds per request). Here the supervisor makes, before forking, one anonymous
shared-memory table with a fixed region per worker slot (the slots of ``toolkit.serving.balance``)
plus one for itself. A worker writes only to its own slot's region; a replacement worker takes a
free slot and carries on from the counts already in it, so nothing is lost or double counted when a
worker dies or is recycled, and the table never grows. The supervisor sums the slots when scraped.

A region is a list of series: a key (metric, model, one more label) and a float. A worker finds its
series' positions once and then updates floats in place under its own lock (a few hundred
nanoseconds per request). Histograms are stored as one count per bucket, made cumulative when
rendered, so a bucket that was never hit costs no series. In-flight counts are zeroed when a worker
exits (its requests went with it). When a region is full (more than ~50 models served by one worker),
new series are dropped and a warning is logged once.
"""

from __future__ import annotations

import bisect
import logging
import mmap
import threading
from typing import Any, Iterable, Optional

log = logging.getLogger("toolkit")

ENTRIES = 4096  # series per slot
KEY_BYTES = 254  # the key's UTF-8 bytes; model names longer than this (in UTF-8) are cut
SEP = "\x1f"

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
GAUGES = frozenset(name for name, (kind, _, _) in METRICS.items() if kind == "gauge")


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
        self._lock = threading.Lock()
        self._decoded: dict[int, tuple[str, str, str]] = {}  # position -> key (keys never change)
        self.bind(slots)

    # -- writing (in a worker, or in the supervisor) ---------------------------------------------

    def bind(self, slot: int) -> None:
        """Write to ``slot`` from now on (in a new worker, after fork); series already there are reused."""
        self._slot = slot
        self._base = slot * ENTRIES
        self._index: dict[tuple[str, str, str], int] = {}
        self._models: dict[str, ModelSeries] = {}
        self._full_warned = False
        for i in range(ENTRIES):
            key = self._key(self._base + i)
            if key is None:
                break
            self._index[key] = self._base + i
        self._used = len(self._index)

    def model(self, name: str) -> ModelSeries:
        """The series of one model in this process (made on first use)."""
        series = self._models.get(name)
        if series is None:
            series = self._models[name] = ModelSeries(self, name)
        return series

    def position(self, metric: str, model: str, label: str = "") -> int:
        """Where a series' value is (made if new); -1 when this slot's region is full."""
        key = (metric, model, label)
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
            raw = SEP.join(key).encode("utf-8")[:KEY_BYTES]
            self._keys[at * KEY_BYTES: at * KEY_BYTES + len(raw)] = raw
            self._values[at] = 0.0
            self._lengths[at] = len(raw)  # last: a reader sees the whole key or none
            self._used += 1
            self._index[key] = at
            return at

    def add(self, at: int, amount: float = 1.0) -> None:
        if at >= 0:
            with self._lock:
                self._values[at] += amount

    def count(self, metric: str, model: str = "", label: str = "", amount: float = 1.0) -> None:
        """Add to a series named by its key (not for hot paths: ``ModelSeries`` caches positions)."""
        self.add(self.position(metric, model, label), amount)

    def clear_gauges(self, slot: int) -> None:
        """Zero the gauges of ``slot`` (its worker has exited: nothing of it is in flight any more)."""
        for i in range(slot * ENTRIES, (slot + 1) * ENTRIES):
            key = self._key(i)
            if key is None:
                return
            if key[0] in GAUGES:
                self._values[i] = 0.0

    # -- reading (the supervisor, when scraped) --------------------------------------------------

    def _key(self, at: int) -> Optional[tuple[str, str, str]]:
        key = self._decoded.get(at)
        if key is not None:
            return key
        length = self._lengths[at]
        if not length:
            return None
        text = bytes(self._keys[at * KEY_BYTES: at * KEY_BYTES + length]).decode("utf-8", errors="replace")
        metric, model, label = [*text.split(SEP), "", ""][:3]
        key = self._decoded[at] = (metric, model, label)
        return key

    def totals(self) -> dict[tuple[str, str, str], float]:
        """Every series summed over all slots."""
        sums: dict[tuple[str, str, str], float] = {}
        for slot in range(self.slots + 1):
            for i in range(slot * ENTRIES, (slot + 1) * ENTRIES):
                key = self._key(i)
                if key is None:
                    break
                sums[key] = sums.get(key, 0.0) + self._values[i]
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


class ModelSeries:
    """One model's series in this process, with their positions found once."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.metrics = metrics
        self.model = model
        self._values = metrics._values
        self._lock = metrics._lock
        self._inflight = metrics.position("toolkit_requests_in_flight", model)
        self._statuses: dict[int, int] = {}
        self._histograms: dict[str, Histogram] = {}

    def histogram(self, metric: str) -> Histogram:
        found = self._histograms.get(metric)
        if found is None:
            found = self._histograms[metric] = Histogram(self.metrics, metric, self.model, METRICS[metric][2])
        return found

    def started(self) -> None:
        if self._inflight >= 0:
            with self._lock:
                self._values[self._inflight] += 1

    def finished(self, status: int, seconds: float) -> None:
        at = self._statuses.get(status)
        if at is None:
            at = self._statuses[status] = self.metrics.position("toolkit_requests_total", self.model, str(status))
        latency = self.histogram("toolkit_request_duration_seconds")
        bucket = latency.bucket(seconds)
        values = self._values
        with self._lock:
            if self._inflight >= 0:
                values[self._inflight] -= 1
            if at >= 0:
                values[at] += 1
            latency.add(values, bucket, seconds)

    def observe(self, metric: str, value: float) -> None:
        histogram = self.histogram(metric)
        bucket = histogram.bucket(value)
        with self._lock:
            histogram.add(self._values, bucket, value)

    def observe_many(self, metric: str, values: Iterable[float]) -> None:
        histogram = self.histogram(metric)
        buckets = [(histogram.bucket(value), value) for value in values]  # outside the lock: may make one
        with self._lock:
            for bucket, value in buckets:
                histogram.add(self._values, bucket, value)


class Histogram:
    """Positions of one histogram's buckets (made when first hit), sum and count."""

    def __init__(self, metrics: Metrics, metric: str, model: str, bounds: tuple) -> None:
        self.metrics = metrics
        self.metric = metric
        self.model = model
        self.bounds = bounds
        self._buckets: list[Optional[int]] = [None] * (len(bounds) + 1)
        self._sum = metrics.position(metric, model, "sum")
        self._count = metrics.position(metric, model, "count")

    def bucket(self, value: float) -> int:
        """The position of the bucket ``value`` falls in (found outside the lock: it may make one)."""
        index = bisect.bisect_left(self.bounds, value)
        at = self._buckets[index]
        if at is None:
            at = self._buckets[index] = self.metrics.position(self.metric, self.model, str(index))
        return at

    def add(self, values: Any, bucket: int, value: float) -> None:
        """Under the metrics lock."""
        if bucket >= 0:
            values[bucket] += 1
        if self._sum >= 0:
            values[self._sum] += value
            values[self._count] += 1


def _histogram(name: str, bounds: tuple, series: dict[tuple[str, str], float]) -> list[str]:
    models = sorted({model for model, _ in series})
    lines = []
    for model in models:
        running = 0.0
        for index, bound in enumerate(bounds):
            running += series.get((model, str(index)), 0.0)
            lines.append(f"{name}_bucket{_labels(model, 'le', _number(bound))} {_number(running)}")
        count = series.get((model, "count"), 0.0)
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
