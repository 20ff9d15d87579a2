"""Dynamic batching: requests to one model that arrive within a short wait are predicted in one call.

Each request is decoded on its own (``input_fn``), joins the model's open batch, waits, and is
encoded on its own (``output_fn``), so each client gets its own answer, status and headers. A batch
closes when it holds ``max_batch_size`` requests, or every request that could still join it (its
requests and those of the running call are as many as the worker's open connections: a client
waits for its answer before sending again, so waiting longer would only add latency; this keeps a
worker with fewer connections than ``max_batch_size`` from waiting out ``max_batch_wait_ms`` on
every batch), or when ``max_batch_wait_ms`` have passed since its first request. One batch call runs
at a time per model in a worker: while one runs, the next batches fill (each up to the size) and
wait their turn, which is what makes batches grow under load. A call that has run longer than
SAGEMAKER_MODEL_SERVER_TIMEOUT (its requests have had their 504) no longer holds the next back.

How a request waits depends on the server:

- With the built-in server's event loop (``toolkit.serving.eventloop``), a waiting request costs no
  thread: the thread that decoded it runs the loop on, nested (``EventLoop.park``), so the batch's
  other requests are read and decoded by the same thread; the call is made by the request that
  fills the batch, or by the loop when the batch's wait is over (``make_due``); then each parked
  request encodes and sends its own answer. No thread switch happens on the way.
- Elsewhere (TOOLKIT_LOOP_HANDOFF_MS=0, another server plugin), each request waits on its own
  thread: the first request of a batch leads it, waits until it closes, makes the call and hands
  each request its part.

The batch call is ``predict_batch_fn(inputs, model)`` from inference.py when it is defined: a list
of the decoded inputs in, a list of as many predictions out (an ``Exception`` in that list fails
only that request). Without it, the default stacks the inputs along their first axis (numpy arrays,
torch tensors, or lists of rows), calls ``predict_fn`` (or the model) once on the whole, and gives
each request its own rows of the output. A request whose input cannot join (not such a type, or
rows of another kind or shape than most of the batch's) fails alone with 400; a batch call that raises fails every
request in it (500, or the status of a ``ClientError``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Optional, Sequence

from toolkit.errors import ClientError, CodeError, ToolkitError
from toolkit.serving import eventloop

log = logging.getLogger("toolkit")

BatchCall = Callable[[list, list], Sequence[Any]]  # (inputs, contexts) -> one result (or Exception) per input
Observer = Callable[[int, list], None]  # (batch size, each request's wait in seconds)
DECLARED = ("max_batch_size", "max_batch_wait_ms")  # what an inference.py may set at module level


class _Item:
    __slots__ = ("context", "data", "done", "failed", "finished", "outcome", "queued")

    def __init__(self, data: Any, context: Any) -> None:
        self.data = data
        self.context = context
        self.queued = time.monotonic()
        self.done = threading.Lock()
        self.done.acquire()  # released once the outcome is set
        self.finished = False  # set (before ``done`` is released) once the outcome is set
        self.outcome: Any = None
        self.failed = False


class Batcher:
    """The batching of one model in one worker."""

    def __init__(self, call: BatchCall, max_size: int, max_wait: float, timeout: float = 0.0,
                 observe: Optional[Observer] = None, name: str = "model") -> None:
        self.call = call
        self.max_size = max_size
        self.max_wait = max_wait
        self.timeout = timeout
        self.observe = observe
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._open: Optional[list[_Item]] = None
        self._deadline = 0.0  # when the open batch's wait is over (event-loop mode)
        self._ready: deque[list[_Item]] = deque()  # closed batches waiting for the running call (event-loop mode)
        self._calls: list[tuple[float, int]] = []  # the running batch calls: (when it started, its size)
        self.capacity: Optional[Callable[[], int]] = None  # the worker's open connections (set per worker)

    def submit(self, data: Any, context: Any = None) -> Any:
        """Predict ``data`` as part of a batch; its prediction, or the exception meant for this request."""
        item = _Item(data, context)
        loop = eventloop.current()
        if loop is not None:
            self._submit_on_loop(item, loop)
        else:
            self._submit_on_thread(item)
        if item.failed:
            raise item.outcome
        return item.outcome

    # -- with the event loop ----------------------------------------------------------------------

    def _submit_on_loop(self, item: _Item, loop: eventloop.EventLoop) -> None:
        with self._cond:
            batch = self._open
            if batch is None:
                batch = self._open = []
                self._deadline = item.queued + self.max_wait
            batch.append(item)
            call = None
            held = self._held_back() or bool(self._ready)  # (then it may grow until its turn comes)
            if len(batch) >= self.max_size or (not held and self._all_in(len(batch))):
                self._open = None
                if held:
                    self._ready.append(batch)  # the loop makes it once the running call has ended
                else:
                    call = self._start(batch)
        if call is not None:
            self._call(batch, call, loop)
            return
        loop.watch(self)
        if not (loop.leads() and loop.park(lambda: item.finished, item.queued + self.max_wait,
                                           lambda by: self._hurry(item, by))):
            item.done.acquire()

    def _hurry(self, item: _Item, by: float) -> None:
        """Make the open batch that holds ``item`` due by ``by`` at the latest: requests parked beneath
        it on the loop's thread, already predicted, are answered only once it returns."""
        with self._cond:
            if self._open is not None and item in self._open:
                self._deadline = min(self._deadline, by)

    def left(self, now: float) -> Optional[float]:
        """Seconds until a batch call is due (0: now), or None when no batch waits (the event loop asks)."""
        with self._cond:
            if self._open is None and not self._ready:
                return None
            if self._held_back():
                return self._until_stale() or 0.2
            if self._ready or self._all_in(len(self._open)):  # type: ignore[arg-type]
                return 0.0
            return max(self._deadline - now, 0.0)

    def make_due(self, now: float) -> None:
        """Make the batch call that is due, if one is, on this thread (the event loop's)."""
        with self._cond:
            if self._held_back():
                return
            if self._ready:
                batch = self._ready.popleft()
            elif self._open is not None and (now >= self._deadline or self._all_in(len(self._open))):
                batch, self._open = self._open, None
            else:
                return
            call = self._start(batch)
        self._call(batch, call, eventloop.current())

    def _start(self, batch: list[_Item]) -> tuple[float, int]:
        """Count ``batch``'s call as running (with the lock held, together with the check that no
        other call holds it back)."""
        call = (time.monotonic(), len(batch))
        self._calls.append(call)
        return call

    def _call(self, batch: list[_Item], call: tuple[float, int], loop: Optional[eventloop.EventLoop]) -> None:
        """Make the batch call, give each request its outcome and wake whoever waits for them."""
        try:
            self._run(batch, call[0])
        finally:
            with self._cond:
                self._calls.remove(call)
                self._cond.notify_all()  # a batch leader waiting for this call (without the event loop)
            for item in batch:
                item.finished = True
                item.done.release()
            if loop is not None:
                loop.batches_made += 1
                if not loop.leads():
                    loop.wake()  # its requests may be parked on the loop's thread, another batch may be due

    # -- each request on a thread of its own --------------------------------------------------------

    def _submit_on_thread(self, item: _Item) -> None:
        with self._cond:
            batch = self._open
            leader = batch is None
            if leader:
                batch = self._open = []
            batch.append(item)  # type: ignore[union-attr]
            if len(batch) >= self.max_size or self._all_in(len(batch)):  # type: ignore[arg-type]
                self._open = None  # full: the next request opens a new one
                if not leader:
                    self._cond.notify_all()
        if leader:
            self._lead(batch, item.queued + self.max_wait)  # type: ignore[arg-type]
        else:
            item.done.acquire()

    def _all_in(self, size: int) -> bool:
        """Whether no other request can join: every open connection of the worker has its request
        in this batch or in a running call."""
        capacity = self.capacity
        return capacity is not None and size + sum(n for _, n in self._live_calls()) >= capacity()

    # -- the leader's part ------------------------------------------------------------------------

    def _live_calls(self) -> list[tuple[float, int]]:
        """The running calls that have not run past the time limit (their requests have had no 504)."""
        if self.timeout <= 0:
            return self._calls
        cutoff = time.monotonic() - self.timeout
        return [call for call in self._calls if call[0] > cutoff]

    def _held_back(self) -> bool:
        """Whether a batch call is running (one that has not yet run past the time limit)."""
        return bool(self._live_calls())

    def _lead(self, batch: list[_Item], deadline: float) -> None:
        cond = self._cond
        with cond:
            while self._open is batch:  # still filling
                left = deadline - time.monotonic()
                if left <= 0:
                    if not self._held_back():
                        break
                    left = self._until_stale()
                cond.wait(left)
            if self._open is batch:
                self._open = None
            while self._held_back():  # a full batch waits for the call before it
                cond.wait(self._until_stale())
            call = self._start(batch)
        self._call(batch, call, None)

    def _until_stale(self) -> Optional[float]:
        """How long until the running calls have all run past the time limit (None: no limit)."""
        if self.timeout <= 0:
            return None
        return max(max(started for started, _ in self._calls) + self.timeout - time.monotonic(), 0.001)

    def _run(self, batch: list[_Item], started: float) -> None:
        if self.observe is not None:
            try:
                self.observe(len(batch), [started - item.queued for item in batch])
            except Exception:  # metrics never fail a request
                log.debug("batch metrics failed", exc_info=True)
        try:
            results = self.call([item.data for item in batch], [item.context for item in batch])
            if isinstance(results, (str, bytes)) or not hasattr(results, "__len__") or len(results) != len(batch):
                got = f"{len(results)} results" if hasattr(results, "__len__") else type(results).__name__
                raise CodeError(f"the batch call of model {self.name!r} returned {got} for {len(batch)} inputs: "
                                f"it must return a list with one prediction per input, in order")
        except Exception as exc:
            self._fail(batch, exc)
            return
        for item, result in zip(batch, results):
            if isinstance(result, BaseException):
                item.failed = True
            item.outcome = result

    def _fail(self, batch: list[_Item], exc: Exception) -> None:
        """Every request of the batch gets an error of its own (one exception object raised in many
        threads at once would share one traceback)."""
        made: Callable[[], Exception]
        if isinstance(exc, ClientError):
            made = lambda: ClientError(str(exc), exc.status)  # noqa: E731
        elif isinstance(exc, ToolkitError):
            made = lambda: CodeError(str(exc), status=exc.status)  # noqa: E731
            log.error("a batch of %d request(s) failed: %s", len(batch), exc)
        else:
            log.error("the batch call of model %r raised, failing its %d request(s)", self.name, len(batch),
                      exc_info=exc)
            first = (str(exc).splitlines() or [""])[0][:300]
            message = f"the model's handler raised {type(exc).__name__}" + (f": {first}" if first else "")
            message += f" (in a batch of {len(batch)} requests)"
            made = lambda: CodeError(message, status=500)  # noqa: E731
        for item in batch:
            item.failed = True
            item.outcome = made()


# -- the default batch call: stack along the first axis -------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "list"
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "torch") and getattr(value, "ndim", 0) >= 1:
        return module
    return ""


def _join(inputs: list, kind: str) -> Any:
    if kind == "numpy":
        import numpy

        return numpy.concatenate(inputs, axis=0)
    if kind == "torch":
        import torch

        return torch.cat(inputs, dim=0)
    return [row for rows in inputs for row in rows]


def stacked(predict: Callable[[Any], Any]) -> BatchCall:
    """The default batch call for a ``predict`` that takes a batch of rows and returns one output row
    per input row: inputs that fit the first one (same kind, same row shape) are stacked into one
    batch; each gets back as many output rows as it sent."""

    def call(inputs: list, contexts: list) -> list:
        results: list[Any] = [None] * len(inputs)
        # the batch is made of the most common kind and row shape (the earliest, between equals)
        keys = Counter((_kind(data), tuple(getattr(data, "shape", ())[1:])) for data in inputs if _kind(data))
        kind, shape = keys.most_common(1)[0][0] if keys else ("", ())
        joined, counts = [], []
        for i, data in enumerate(inputs):
            own = _kind(data)
            if not own:
                results[i] = ClientError(
                    f"this model batches requests (max_batch_size), and the decoded input is a "
                    f"{type(data).__name__}, which cannot be stacked with others: send rows (a list of rows, "
                    f"an array or tensor with a first axis), or define predict_batch_fn(inputs, model)")
            elif own != kind or tuple(getattr(data, "shape", ())[1:]) != shape:
                found = tuple(getattr(data, "shape", ())) or f"a {own}"
                results[i] = ClientError(f"this request's input ({found}) does not stack with the other "
                                         f"requests of its batch (rows of shape {shape}, {kind})")
            else:
                joined.append(i)
                counts.append(len(data))
        if not joined:
            return results
        output = predict(_join([inputs[i] for i in joined], kind))
        total = sum(counts)
        rows = len(output) if hasattr(output, "__len__") else -1
        if rows != total:
            raise CodeError(f"the model returned {rows if rows >= 0 else type(output).__name__} rows for a batch "
                            f"of {total} input rows: with batching on, predict_fn (or the model) must return one "
                            f"output row per input row, or define predict_batch_fn(inputs, model)")
        start = 0
        for i, count in zip(joined, counts):
            results[i] = output[start:start + count]
            start += count
        return results

    return call


# -- set-up ------------------------------------------------------------------------------------


def settings(handler: Any, env: Any) -> tuple[int, float]:
    """(max batch size, max wait in seconds) for a handler: its inference.py's, else the environment's."""
    declared = getattr(handler, "declared", {}) or {}
    size = declared.get("max_batch_size", env.max_batch_size)
    wait_ms = declared.get("max_batch_wait_ms", env.max_batch_wait_ms)
    origin = getattr(handler, "origin", "inference.py")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CodeError(f"max_batch_size = {size!r} in {origin}: expected a whole number, at least 1 (e.g. 32)")
    if isinstance(wait_ms, bool) or not isinstance(wait_ms, (int, float)) or wait_ms < 0:
        raise CodeError(f"max_batch_wait_ms = {wait_ms!r} in {origin}: expected milliseconds, at least 0 (e.g. 5)")
    return size, wait_ms / 1000.0


def attach(handler: Any, env: Any, observe: Optional[Observer] = None, name: str = "model") -> Optional[Batcher]:
    """Turn batching on for ``handler`` (an inference.py handler) when it is asked for: sets and
    returns ``handler.batcher``, or None. A configuration the batching cannot honour is logged and the
    model is served one request at a time; a malformed declaration is the handler's ``problem``."""
    fns = getattr(handler, "fns", None)
    if fns is None or not hasattr(handler, "batcher"):
        return None  # not an inference.py handler: batching is part of that contract only
    try:
        size, wait = settings(handler, env)
    except CodeError as exc:
        handler.problem = str(exc)
        return None
    batch_fn = fns.get("predict_batch_fn")
    if size <= 1 and batch_fn is None:
        return None
    why_not = ""
    if "transform_fn" in fns:
        why_not = "it defines transform_fn (decoding, predicting and encoding in one call)"
    elif batch_fn is None:
        predict_fn = fns.get("predict_fn")
        if predict_fn is not None and predict_fn.with_context:
            why_not = "its predict_fn takes a context, which a batch of requests does not have"
        elif predict_fn is not None and _is_generator(predict_fn.fn):
            why_not = "its predict_fn streams (a generator), and streamed answers are never batched"
    if why_not:
        log.warning("%s: batching is off for model %r: %s; define predict_batch_fn(inputs, model) to batch it",
                    getattr(handler, "origin", "inference.py"), name, why_not)
        return None
    if batch_fn is not None:
        def call(inputs: list, contexts: list) -> Sequence[Any]:
            return batch_fn(contexts, inputs, handler.model)
    else:
        predict_fn = fns.get("predict_fn")
        if predict_fn is not None:
            call = stacked(lambda batch: predict_fn(None, batch, handler.model))
        else:
            call = stacked(lambda batch: _default_predict(handler, batch))
    handler.batcher = Batcher(call, size, wait, env.timeout, observe, name)
    log.info("model %r: dynamic batching, up to %d requests per call, waiting up to %g ms", name, size, wait * 1000)
    return handler.batcher


def _default_predict(handler: Any, batch: Any) -> Any:
    """What the handler predicts with when inference.py has no predict_fn: its framework's default
    (``handler.defaults``, read at call time: it is set once the model is loaded)."""
    return handler.defaults.predict_fn(batch, handler.model)


def _is_generator(fn: Any) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def worker_threads(env: Any, app: Any) -> int:
    """Request threads a worker needs: a request waits for its batch on its own thread, so a worker
    runs at least two batches' worth (one being predicted, the next filling)."""
    largest = max(env.max_batch_size, getattr(getattr(app, "batcher", None), "max_size", 1))
    return max(env.threads, 2 * largest) if largest > 1 else env.threads


__all__ = ["Batcher", "attach", "settings", "stacked", "worker_threads"]
