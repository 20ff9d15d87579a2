"""The supervisor's side of multi-model serving: one thread that owns the list of loaded models and
carries out every load and unload in all workers, one at a time.

A worker that receives POST /models or DELETE /models/{name} asks here (its ``requests`` line) and
waits. Load: 409 if the name is loaded, 507 if TOOLKIT_MAX_MODELS or the memory headroom would be
exceeded, then the model's code/requirements.txt is installed once (here, not per worker), every
worker is told to load it and every acknowledgement awaited; if any worker fails, the others unload
it again and the answer is 500 with the worker's reason (507 for a MemoryError). Unload: every worker
drops it and releases its memory before the 200. A worker forked later (a replacement for one that
died) is told to load every registered model before it may serve.

Fork safety: the main thread forks while this thread runs, and a fork copies only the forking
thread, with every lock as it was. The children never use this object's locks or readers (they close
the supervisor's socket ends by fd, ``WorkerSockets``), and they write their logs through new stdout/stderr
objects: this thread may have been inside sys.stderr's buffer lock (a log line, pip's output) at the
moment of the fork, which would leave that lock held forever in the child. logging re-creates its
own handler locks after a fork.
"""

from __future__ import annotations

import logging
import queue
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

from toolkit import steps
from toolkit.environment import ServingEnv
from toolkit.errors import ToolkitError
from toolkit.serving.multimodel import memory
from toolkit.serving.multimodel.links import Line, WorkerSockets, close_in_child, reply

log = logging.getLogger("toolkit")
MB = 1024 * 1024


def fresh_standard_streams() -> None:
    """In a new child: stdout/stderr objects of its own on fds 1 and 2, and the log handlers on them."""
    import io
    import sys

    replaced = {}
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        if old is None:
            continue
        try:
            new = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=old.encoding,
                                   errors=old.errors, line_buffering=True, write_through=True)
        except (OSError, AttributeError, ValueError):
            continue
        replaced[id(old)] = new
        setattr(sys, name, new)
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and id(stream) in replaced:
                handler.stream = replaced[id(stream)]  # not setStream(): it would flush the old one


class WorkerLink:
    __slots__ = ("commands", "pid", "requests")

    def __init__(self, pid: int, requests: Line, commands: Line) -> None:
        self.pid = pid
        self.requests = requests
        self.commands = commands

    def close(self) -> None:
        for line in self.requests, self.commands:
            try:
                line.close()
            except OSError:
                pass


class ModelControl:
    def __init__(self, env: ServingEnv, pm: Any, trial: Optional[Any] = None) -> None:
        self.env = env
        self.pm = pm
        self.trial = trial  # a Registry to try each load with first, in a throwaway process (probe.py)
        self.registry: dict[str, str] = {}  # name -> url, in load order
        self.workers: dict[int, WorkerLink] = {}
        self.channels: list[WorkerSockets] = []  # every channel made, for children to close (main thread only)
        self._joining: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread: Optional[threading.Thread] = None

    # -- main thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the control thread with the stop signals blocked in it, so that they always reach
        the main thread (which may be blocked in waitpid and would otherwise never run the handler)."""
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            self._thread = threading.Thread(target=self._run, name="toolkit-model-control", daemon=True)
            self._thread.start()  # a new thread inherits the signal mask of the one that starts it
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def channel(self) -> WorkerSockets:
        """A new worker's lines, made before fork."""
        made = WorkerSockets()
        self.channels = [c for c in self.channels if not c.closed()]
        self.channels.append(made)
        return made

    def adopt(self, pid: int, made: WorkerSockets) -> None:
        """After fork, in the supervisor: hand the worker to the control thread."""
        requests, commands = made.in_supervisor()
        self._joining.put(WorkerLink(pid, requests, commands))
        self._wake_write.send(b"x")

    def in_child(self, own: WorkerSockets) -> tuple[Line, Line]:
        """After fork, in the worker: keep only its own ends of its own channel."""
        for other in self.channels:
            if other is not own:
                other.close_supervisor_side()
        close_in_child(self._wake_read)
        close_in_child(self._wake_write)
        self.channels = []
        fresh_standard_streams()
        return own.in_worker()

    # -- control thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # the thread must outlive any surprise, or every later load would hang
                log.exception("multi-model control thread")
                time.sleep(0.1)

    def _step(self) -> None:
        """Take in new workers, then answer the workers' requests that are waiting."""
        self._take_joiners()
        links = {link.requests.fileno(): link for link in self.workers.values()}
        try:
            ready, _, _ = select.select([self._wake_read, *links], [], [])
        except (OSError, ValueError):
            time.sleep(0.05)  # a worker's socket went away under us: rebuild the list
            return
        for fd in ready:
            if fd is self._wake_read:
                self._wake_read.recv(4096)
                continue
            link = links[fd]
            message = link.requests.receive()
            if message is None:
                self._drop(link)
                continue
            try:
                answer = self._handle(message)
            except Exception as exc:  # keep the thread alive and the worker answered
                log.exception("multi-model control: %s failed", message.get("op"))
                answer = reply(500, message=f"{message.get('op')} failed: {type(exc).__name__}: {exc}")
            if not link.requests.send(answer):
                self._drop(link)

    def _take_joiners(self) -> None:
        while True:
            try:
                link = self._joining.get_nowait()
            except queue.Empty:
                return
            self.workers[link.pid] = link
            for name, url in list(self.registry.items()):
                ack = self._command(link, {"op": "load", "name": name, "url": url})
                if ack is not None and not ack.get("ok"):
                    log.error("worker %d could not load model %r: %s; it answers 404 for it", link.pid, name,
                              ack.get("error"))
            if link.pid in self.workers and not link.commands.send({"op": "serve"}):
                self._drop(link)

    def _drop(self, link: WorkerLink) -> None:
        if self.workers.pop(link.pid, None) is not None:
            link.close()

    def _command(self, link: WorkerLink, command: dict) -> Optional[dict]:
        ack = link.commands.call(command)
        if ack is None:
            log.warning("worker %d is gone (during %s of model %r)", link.pid, command["op"], command.get("name"))
            self._drop(link)
        return ack

    def _broadcast(self, command: dict) -> dict[int, Optional[dict]]:
        """Send to every worker, then collect every acknowledgement (workers work in parallel)."""
        sent = [link for link in list(self.workers.values()) if link.commands.send(command)]
        acks: dict[int, Optional[dict]] = {}
        for link in sent:
            ack = link.commands.receive()
            if ack is None:
                log.warning("worker %d is gone (during %s of model %r)", link.pid, command["op"], command["name"])
                self._drop(link)
            acks[link.pid] = ack
        return acks

    def _handle(self, message: dict) -> dict:
        op = message.get("op")
        if op == "load":
            return self.load(message["name"], message["url"])
        if op == "unload":
            return self.unload(message["name"])
        return reply(400, message=f"unknown operation {op!r}")

    def load(self, name: str, url: str) -> dict:
        if name in self.registry:
            return reply(409, message=f"model {name!r} is already loaded (from {self.registry[name]}); "
                                      f"DELETE /models/{name} first to load it again")
        limit = self.env.max_models
        if limit and len(self.registry) >= limit:
            return reply(507, message=f"{len(self.registry)} models are loaded, as many as TOOLKIT_MAX_MODELS="
                                      f"{limit} allows; unload one first")
        headroom = self.env.memory_headroom_mb * MB
        available = memory.available_bytes()
        if headroom and available is not None and available < headroom:
            return reply(507, message=f"only {available // MB} MB of memory is available, less than the "
                                      f"{headroom // MB} MB TOOLKIT_MEMORY_HEADROOM_MB keeps free; "
                                      f"unload a model first")
        if not Path(url).is_dir():
            return reply(400, message=f"url {url!r} is not a folder on this host")
        started = time.perf_counter()
        code = Path(url) / "code"
        if code.is_dir():
            try:
                steps.install(code, self.env.settings_view(), self.pm)
            except ToolkitError as exc:
                return reply(500, message=f"model {name!r}: installing its dependencies failed: {exc}")
        if self.trial is not None and self.env.probe_model_loads:
            from toolkit.serving.multimodel.probe import trial_load

            tried = trial_load(self.trial.load, name, url)
            if not tried.get("ok"):
                return self._not_loaded(name, tried)
        acks = self._broadcast({"op": "load", "name": name, "url": url})
        failed = {pid: ack for pid, ack in acks.items() if ack is None or not ack.get("ok")}
        if failed or not acks:
            self._broadcast({"op": "unload", "name": name})
            if not acks:
                return reply(503, message="no worker is running; retry in a moment")
            pid, ack = next(iter(failed.items()))
            return self._not_loaded(name, ack or {"error": f"worker {pid} died while loading it"})
        self.registry[name] = url
        log.info("model %r loaded from %s in %d worker(s) in %.2f s", name, url, len(acks),
                 time.perf_counter() - started)
        return reply(200, modelName=name, modelUrl=url)

    def _not_loaded(self, name: str, ack: dict) -> dict:
        """The answer to a load that failed somewhere: 507 for a MemoryError, else 500, saying why."""
        reason = ack.get("error")
        log.error("model %r not loaded: %s", name, reason)
        return reply(507 if ack.get("memory") else 500, message=f"model {name!r} was not loaded: {reason}")

    def unload(self, name: str) -> dict:
        url = self.registry.pop(name, None)
        if url is None:
            return reply(404, message=f"model {name!r} is not loaded")
        started = time.perf_counter()
        acks = self._broadcast({"op": "unload", "name": name})
        failed = [ack.get("error") for ack in acks.values() if ack is not None and not ack.get("ok")]
        if failed:
            log.error("unloading model %r: %s", name, failed[0])
        log.info("model %r unloaded from %d worker(s) in %.2f s", name, len(acks), time.perf_counter() - started)
        return reply(200, message=f"model {name!r} unloaded", modelName=name, modelUrl=url)
