"""The helper the torchrun launcher runs on each host: ``python -m toolkit_torchrun.node``.

It runs torchrun (``python -m torch.distributed.run``) and makes the hosts agree on how the job
ended. The first host also runs a small coordinator (TCP, one JSON line per message, on the
master port + 1): every node connects to it, reports its result when its torchrun ends, and
exits with the job's result the coordinator sends back. When one node fails, the coordinator
tells the others to stop at once (so nobody waits in a collective for a peer that is gone), then
picks the root cause: a stop signal first, else the failed rank that ended first (its exit code,
from ``toolkit_torchrun.rank``'s record). Without a coordinator (it never answered within
``--wait-seconds``) a node ends with its own result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from toolkit import Supervisor

log = logging.getLogger("toolkit")
DECISION_GRACE = 60.0  # after the first failure, how long the others get to report theirs
STOP_GRACE = 110.0  # after a stop, how long torchrun gets to end its workers before it is killed


@dataclass
class Result:
    """How one node's torchrun ended. kind: ok | failed | signalled | stopped | lost."""

    node: int
    host: str
    kind: str
    code: int = 0
    rank: str = ""
    time: float = 0.0

    def describe(self) -> str:
        where = f"rank {self.rank} on {self.host}" if self.rank else self.host
        if self.kind == "signalled":
            return f"{self.host} was stopped by a signal (exit code {self.code})"
        if self.kind == "lost":
            return f"{self.host} never reported (lost)"
        return f"{where} failed with exit code {self.code}"


def root_cause(results: Sequence[Result]) -> Optional[Result]:
    """The failure that explains the job: a stop signal, else the earliest failed rank, else a
    node that was stopped or lost; None when every node succeeded."""
    for kinds in (("signalled",), ("failed",), ("stopped", "lost")):
        found = sorted((r for r in results if r.kind in kinds), key=lambda r: r.time)
        if found:
            return found[0]
    return None


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
    except OSError:
        pass


class Coordinator:
    """Runs on the first host: collects every node's result and sends back the job's."""

    def __init__(self, port: int, nnodes: int) -> None:
        self.nnodes = nnodes
        self.server = socket.create_server(("", port), reuse_port=False, backlog=64)
        self.lock = threading.Lock()
        self.conns: dict[int, socket.socket] = {}
        self.results: dict[int, Result] = {}
        self.first_failure: Optional[float] = None
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._decide, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        node = None
        for line in conn.makefile("r"):
            message = json.loads(line)
            with self.lock:
                if message["type"] == "hello":
                    node = int(message["node"])
                    self.conns[node] = conn
                    if self.first_failure is not None:
                        _send(conn, {"type": "stop"})
                elif message["type"] == "result":
                    result = Result(**message["result"])
                    self.results[result.node] = result
                    if result.kind != "ok" and self.first_failure is None:
                        self.first_failure = time.monotonic()
                        log.error("torchrun: %s; stopping the other hosts", result.describe())
                        for other, c in self.conns.items():
                            if other not in self.results:
                                _send(c, {"type": "stop"})
        with self.lock:
            if node is not None and node not in self.results and not self.done.is_set():
                # a node that drops its connection before reporting has died
                self.results[node] = Result(node, f"node {node}", "lost", 1, time=time.time())
                if self.first_failure is None:
                    self.first_failure = time.monotonic()
                for other, c in self.conns.items():
                    if other not in self.results:
                        _send(c, {"type": "stop"})

    def _decide(self) -> None:
        while True:
            with self.lock:
                everyone = len(self.results) == self.nnodes
                late = self.first_failure is not None and time.monotonic() - self.first_failure > DECISION_GRACE
                if everyone or late:
                    cause = root_cause(list(self.results.values()))
                    decision = {"type": "decision", "code": cause.code if cause else 0,
                                "why": cause.describe() if cause else ""}
                    for c in self.conns.values():
                        _send(c, decision)
                    self.done.set()
                    return
            time.sleep(0.05)

    def close(self) -> None:
        self.server.close()


class Client:
    """A node's link to the coordinator: says hello, hears stop and the decision."""

    def __init__(self, address: tuple[str, int], node: int, deadline: float) -> None:
        self.address, self.node, self.deadline = address, node, deadline
        self.conn: Optional[socket.socket] = None
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.decision: Optional[dict] = None
        self.decided = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        attempt, pause = 0, 0.1
        while True:
            attempt += 1
            try:
                self.conn = socket.create_connection(self.address, timeout=5)
                break
            except OSError as exc:
                if time.monotonic() > self.deadline:
                    log.error("torchrun: coordinator %s:%d unreachable after %d attempts (%s)",
                              *self.address, attempt, exc)
                    self.decided.set()
                    return
                if attempt == 1 or attempt % 10 == 0:
                    log.info("torchrun: coordinator %s:%d not ready (%s), retrying", *self.address, exc)
                time.sleep(pause)
                pause = min(pause * 1.5, 2.0)
        self.conn.settimeout(None)
        _send(self.conn, {"type": "hello", "node": self.node})
        self.connected.set()
        for line in self.conn.makefile("r"):
            message = json.loads(line)
            if message["type"] == "stop":
                self.stop.set()
            elif message["type"] == "decision":
                self.decision = message
                break
        self.decided.set()

    def report(self, result: Result) -> None:
        if self.conn is not None:
            _send(self.conn, {"type": "result", "result": asdict(result)})


def local_result(node: int, host: str, code: int, state: Path, signalled: list[int], stopped: bool) -> Result:
    if signalled:
        return Result(node, host, "signalled", 128 + signalled[0], time=time.time())
    if code == 0:
        return Result(node, host, "ok")
    records = []
    for path in state.glob("rank-*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if records:
        first = min(records, key=lambda r: r["time"])
        return Result(node, host, "failed", int(first["code"]), str(first["rank"]), float(first["time"]))
    return Result(node, host, "stopped" if stopped else "failed", code, time=time.time())


def missing_torch() -> Optional[str]:
    """Why torchrun cannot start here, as the failure file's first line, or None. Checked
    before anything else (without importing torch, which takes seconds): otherwise the cause,
    ``No module named 'torch'``, is buried in the stderr tail under "algo-1 failed"."""
    if importlib.util.find_spec("torch") is not None:
        return None
    return (f"torchrun: PyTorch is not installed (No module named 'torch' in {sys.executable}): pip install torch, "
            f"or add torch to the job's requirements.txt, or use an image that has PyTorch")


def run(opts: argparse.Namespace, torchrun: list[str]) -> int:
    why = missing_torch()
    if why:
        print(why, file=sys.stderr)
        return 1
    host, port = opts.coordinator.rsplit(":", 1)
    deadline = time.monotonic() + opts.wait_seconds
    try:
        coordinator = Coordinator(int(port), opts.nnodes) if opts.node_rank == 0 else None
    except OSError as exc:
        print(f"torchrun: cannot listen on port {port} for the hosts' coordinator: {exc.strerror}; "
              f"free it or set TOOLKIT_TORCHRUN_COORDINATOR_PORT", file=sys.stderr)
        return 2
    client = Client((host, int(port)), opts.node_rank, deadline)
    state = Path(tempfile.mkdtemp(prefix="toolkit-torchrun-"))
    env = dict(os.environ, TOOLKIT_TORCHRUN_STATE=str(state))

    stopped: list[bool] = []

    def another_failed() -> Optional[str]:
        if client.stop.is_set() and not stopped:
            stopped.append(True)
            return f"torchrun: another host failed; on {opts.host}"
        return None

    with Supervisor(STOP_GRACE, stop_when=another_failed) as supervisor:
        supervisor.start([sys.executable, "-m", "torch.distributed.run", *torchrun], env=env, name="torchrun")
        done = supervisor.wait()
    signalled = [done.signalled] if done.signalled is not None else []
    code = done.children[0].exit_code or 0
    result = local_result(opts.node_rank, opts.host, code, state, signalled, bool(stopped))
    if client.connected.is_set():
        client.report(result)
        client.decided.wait(timeout=DECISION_GRACE + opts.wait_seconds)
    if coordinator is not None:
        coordinator.done.wait(timeout=DECISION_GRACE + 10)
        time.sleep(0.2)  # let the decision reach every node before the server goes away
        coordinator.close()
    shutil.rmtree(state, ignore_errors=True)
    if client.decision is not None:
        code, why = int(client.decision["code"]), client.decision["why"]
    else:
        code, why = result.code, result.describe() if result.kind != "ok" else ""
    if code != 0:
        print(f"torchrun: the job failed: {why}", file=sys.stderr)
    return code


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    if "--" not in argv:
        raise SystemExit("usage: python -m toolkit_torchrun.node OPTIONS -- TORCHRUN-ARGS")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m toolkit_torchrun.node")
    parser.add_argument("--nnodes", type=int, required=True)
    parser.add_argument("--node-rank", type=int, required=True)
    parser.add_argument("--coordinator", required=True, help="HOST:PORT on the first host")
    parser.add_argument("--host", required=True)
    parser.add_argument("--wait-seconds", type=float, default=300.0)
    return parser.parse_args(argv[:cut]), argv[cut + 1:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts, torchrun = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s toolkit-torchrun %(levelname)s %(message)s")
    return run(opts, torchrun)


if __name__ == "__main__":
    sys.exit(main())
