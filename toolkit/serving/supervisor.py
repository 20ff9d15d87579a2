"""The prefork supervisor: bind the port once, fork the workers, replace the ones that die, stop
gracefully on SIGTERM, and reap every child (we are PID 1 in a container).

Each worker inherits the listening socket and serves the app through ``toolkit_serve`` (waitress
by default); a shared table (``toolkit.serving.balance``) lets the least loaded worker accept each
new connection. Workers that ask to be recycled (``toolkit.serving.recycle``) are replaced once
their replacement is ready. With TOOLKIT_PRELOAD_MODEL=true the model
is loaded here, before forking, so its memory is shared copy-on-write; otherwise each worker
loads it in a background thread while already answering /ping with 503.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Optional

from toolkit.environment import ServingEnv
from toolkit.process import exit_code_of
from toolkit.serving import batching, metrics, observer, recycle
from toolkit.serving.app import error_body
from toolkit.serving.balance import Balance
from toolkit.serving.worker import Worker

log = logging.getLogger("toolkit")
QUICK_DEATH = 1.0  # a worker that dies sooner than this after starting is "crash looping"


def bind(env: ServingEnv) -> socket.socket:
    """The listening socket, bound before any worker exists, so connections queue from the start."""
    family = socket.AF_INET6 if ":" in env.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((env.host, env.port))
    except OSError as exc:
        sock.close()
        from toolkit.errors import ConfigError

        raise ConfigError(f"cannot listen on {env.host}:{env.port}: {exc.strerror}; "
                          f"free the port or set SAGEMAKER_BIND_TO_PORT") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


class Supervisor:
    def __init__(self, env: ServingEnv, app: Any, pm: Any) -> None:
        self.env = env
        self.app = app
        self.pm = pm
        self.workers: dict[int, float] = {}  # pid -> start time
        self.slots: dict[int, int] = {}  # pid -> its slot in the balance table
        self.balance = Balance(recycle.slots(env))
        self.recycling = recycle.Flags(self.balance.slots) if recycle.enabled(env) else None
        self.retiring: dict[int, int] = {}  # a worker that asked to be recycled -> its replacement
        self.draining: set[int] = set()  # recycled workers told to stop
        self.recycle_after = 0.0  # after a replacement died young: when to try again
        self.metrics: Any = getattr(app, "metrics", None)  # toolkit.serving.metrics.Metrics, or None
        self.metrics_server: Any = None
        self.stopping = False
        self.sock: socket.socket | None = None
        self.backoff = 0.0
        self.models: Any = None  # multi-model: the ModelControl (toolkit.serving.multimodel.control)
        self.channel: Any = None  # multi-model, in a worker: its lines to the supervisor

    def run(self) -> int:
        self.sock = bind(self.env)
        log.info("listening on %s:%d with %d worker(s), %d thread(s) each, timeout %gs",
                 self.env.host, self.env.port, self.env.workers, self.env.threads, self.env.timeout)
        if self.metrics is not None and self.env.metrics_port:
            self.metrics_server = metrics.serve(self.metrics, self.env.host, self.env.metrics_port)
        if self.env.preload_model:
            log.info("loading the model before forking (TOOLKIT_PRELOAD_MODEL)")
            self.app.load()
        if self.env.multi_model:
            self._start_model_control()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        try:  # import the default server once, here, so the workers share it instead of each importing it
            import waitress.server  # noqa: F401
        except ImportError:
            pass
        for _ in range(self.env.workers):
            self._spawn()
        return self._supervise()

    # -- workers ------------------------------------------------------------------------------

    def _spawn(self) -> int:
        # Block the stop signals across fork: otherwise a SIGTERM landing between fork() and the
        # child's own handlers would run the supervisor's stop handler inside the new worker.
        stops = {signal.SIGTERM, signal.SIGINT}
        channel = self.models.channel() if self.models is not None else None
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        index = min(set(range(self.balance.slots)) - set(self.slots.values()))
        slot = self.balance.slot(index)
        if self.recycling is not None:
            self.recycling.clear(index)
        pid = os.fork()
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
            self.workers[pid] = time.monotonic()
            self.slots[pid] = index
            if channel is not None:
                self.models.adopt(pid, channel)
            return pid
        code = 1
        try:
            if self.metrics is not None:
                metrics.close_in_child(self.metrics_server)
                self.metrics.bind(index)
                self.metrics.start_folding()
            if channel is not None:
                self.channel = self.models.in_child(channel)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
            code = self._worker(slot)
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            try:
                if self.metrics is not None:
                    self.metrics.fold()  # the answers of its last moments count too
            except Exception:
                log.exception("worker %d: the last metrics were lost", os.getpid())
            for handler in logging.getLogger("toolkit").handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(code)

    def _worker(self, slot: Any) -> int:
        use_connections = getattr(self.app, "use_connections", None)
        if use_connections is not None:
            use_connections(slot.connections)
        if self.channel is not None:
            self._join_models()
        if not self.app.ready:
            threading.Thread(target=self.app.load, name="toolkit-load-model", daemon=True).start()
        assert self.sock is not None
        env = self.env
        if env.gil_switch_ms > 0:  # an experiment with the p99 tail: see "The tail" in docs/serving.md
            sys.setswitchinterval(env.gil_switch_ms / 1000)
        threads = batching.worker_threads(env, self.app)
        if threads != env.threads:
            env = replace(env, threads=threads)
        app = observer.wrap(self.app, env, recycle.Recycler.for_worker(env, self.recycling, slot.index))
        try:
            served = self.pm.hook.toolkit_serve(worker=Worker(app, self.sock, env, slot))
        finally:
            if app is not self.app:
                app.close()  # the access lines still buffered
        if not served:
            log.error("no plugin served the app (toolkit_serve): is the waitress plugin disabled?")
            return 2
        return 0

    # -- multi-model endpoints (SAGEMAKER_MULTI_MODEL=true) -------------------------------------

    def _start_model_control(self) -> None:
        """The thread that loads and unloads models in every worker (toolkit/serving/multimodel)."""
        from toolkit.serving.multimodel.control import ModelControl

        self.models = ModelControl(self.env, self.pm, trial=self.app.registry)
        self.models.start()

    def _join_models(self) -> None:
        """In a new worker: load the models the supervisor has loaded, before serving any request."""
        from toolkit.serving.multimodel.worker import Agent

        requests, commands = self.channel
        self.app.join(Agent(self.app.registry, requests, commands))

    def _supervise(self) -> int:
        while True:
            if self.recycling is not None and not self.stopping:
                self._recycle()
            if not self.workers and self.stopping:
                # the stop deadline's timer must not outlive us: it would fire while the interpreter
                # exits, its handler gone, and end the process by SIGALRM (exit -14, seen under load)
                signal.setitimer(signal.ITIMER_REAL, 0)
                log.info("stopped")
                return 0
            if not self.workers:
                self._answer_503_for(self.backoff)
                self.backoff = 0.0
                if not self.stopping:
                    self._spawn()
                continue
            try:
                # with recycling on, the loop also looks at the workers' flags, so it does not block
                pid, status = os.waitpid(-1, os.WNOHANG if self.stopping or self.recycling is not None else 0)
            except ChildProcessError:
                self.workers.clear()
                for index in self.slots.values():
                    self.balance.clear(index)
                self.slots.clear()
                continue
            except InterruptedError:
                continue
            if pid == 0:
                time.sleep(0.05)
                continue
            started = self.workers.pop(pid, None)
            if started is None:
                continue  # an orphan we reaped as PID 1
            index = self.slots.pop(pid)
            self.balance.clear(index)  # the others stop leaving connections to it
            if self.metrics is not None:
                self.metrics.clear_gauges(index)
            if self.stopping:
                log.info("worker %d stopped (%s)", pid, describe_status(status))
                continue
            if self._recycled(pid, status, time.monotonic() - started):
                continue
            lived = time.monotonic() - started
            log.error("worker %d %s after %.1f s: starting a new one", pid, describe_status(status), lived)
            if lived < QUICK_DEATH:
                self.backoff = min(max(self.backoff * 2, 0.25), 5.0)
                if self.workers:
                    time.sleep(self.backoff)
                    self._spawn()
                continue  # with no worker left, the loop answers 503 during the backoff
            self.backoff = 0.0
            self._spawn()

    # -- recycling (TOOLKIT_MAX_REQUESTS, TOOLKIT_MAX_RSS_MB) ---------------------------------------

    def _recycle(self) -> None:
        """Fork a replacement for each worker that asks; stop the asker once its replacement is ready."""
        assert self.recycling is not None
        for pid, index in list(self.slots.items()):
            if (self.recycling.asked(index) and pid not in self.retiring and pid not in self.draining
                    and pid not in self.retiring.values() and time.monotonic() >= self.recycle_after
                    and len(self.slots) < self.balance.slots):  # else: once a draining worker has gone
                self.retiring[pid] = self._spawn()
                log.info("worker %d asked to be recycled: started worker %d to replace it", pid, self.retiring[pid])
        ready = self.balance.counts()
        for old, new in list(self.retiring.items()):
            if self.slots.get(new) in ready:
                del self.retiring[old]
                self.draining.add(old)
                _kill(old, signal.SIGTERM)  # it drains: answers what it has, then exits

    def _recycled(self, pid: int, status: int, lived: float) -> bool:
        """Whether the exit of ``pid`` is part of a recycling (so no replacement is to be started)."""
        if pid in self.draining:
            self.draining.discard(pid)
            log.info("worker %d recycled (%s)", pid, describe_status(status))
            if self.metrics is not None:
                self.metrics.count("toolkit_workers_recycled_total")
            return True
        if pid in self.retiring:  # it died before its replacement was ready: that one takes its place
            log.error("worker %d %s after %.1f s while being recycled; worker %d replaces it", pid,
                      describe_status(status), lived, self.retiring.pop(pid))
            return True
        old: Optional[int] = next((o for o, n in self.retiring.items() if n == pid), None)
        if old is not None:  # the replacement died: the old worker serves on, and asks again later
            del self.retiring[old]
            if lived < QUICK_DEATH:
                self.backoff = min(max(self.backoff * 2, 0.25), 5.0)
                self.recycle_after = time.monotonic() + self.backoff
            log.error("worker %d, the replacement of worker %d, %s after %.1f s; worker %d serves on", pid, old,
                      describe_status(status), lived, old)
            return True
        return False

    def _answer_503_for(self, seconds: float) -> None:
        """With no worker alive, answer connections with 503 ourselves instead of leaving them queued."""
        deadline = time.monotonic() + seconds
        body = error_body("no model server worker is running; one is being started")
        response = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert self.sock is not None
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            try:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    continue
                conn, _ = self.sock.accept()
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                return
            with conn:
                conn.settimeout(0.5)
                try:
                    conn.recv(65536)
                    conn.sendall(response)
                except OSError:
                    pass

    def _on_stop(self, signum: int, _frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("received %s: stopping %d worker(s) after their in-flight requests",
                 signal.Signals(signum).name, len(self.workers))
        if self.sock is not None:
            self.sock.close()
        for pid in list(self.workers):
            _kill(pid, signal.SIGTERM)
        signal.signal(signal.SIGALRM, self._on_deadline)  # fires even while we block in waitpid
        signal.setitimer(signal.ITIMER_REAL, self.env.stop_seconds)

    def _on_deadline(self, _signum: int, _frame: object) -> None:
        for pid in list(self.workers):
            log.warning("worker %d still running %g s after SIGTERM: SIGKILL", pid, self.env.stop_seconds)
            _kill(pid, signal.SIGKILL)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


__all__ = ["Supervisor", "bind", "exit_code_of"]
