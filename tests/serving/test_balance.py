"""Kept-alive connections spread evenly over the workers (toolkit.serving.balance), seen from outside:
real ``serve`` processes, real connections, the worker that answered named by its pid."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
import types
from collections import Counter
from pathlib import Path

import serving_helpers
from helpers import wait_for
from serving_helpers import Server

from toolkit.serving import balance as balance_module
from toolkit.serving.balance import SHED_AFTER, Balance

start_server = serving_helpers.start_server  # the fixture

WHO = """
    import os
    import time

    def model_fn(model_dir):
        if os.path.exists(os.path.join(model_dir, "slow")):
            # a replacement worker loads slowly: until the test writes "loaded" (at most 120 s)
            deadline = time.monotonic() + 120
            while not os.path.exists(os.path.join(model_dir, "loaded")) and time.monotonic() < deadline:
                time.sleep(0.01)
        return "model"

    def predict_fn(data, model):
        return {"pid": os.getpid()}
"""


def _state(pid: int, task: str) -> str:
    stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[0]


def connect(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)


def ask(conn: http.client.HTTPConnection) -> tuple[int, int]:
    """(status, pid of the worker that answered) for one request on a kept-alive connection."""
    conn.request("POST", "/invocations", body=b"{}", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, (json.loads(body)["pid"] if resp.status == 200 else 0)


def both_workers(server: Server, timeout: float = 60.0) -> list[int]:
    """Open connections one at a time until two different workers have answered (both models loaded)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < 2 and time.monotonic() < deadline:
        conn = connect(server)
        try:
            status, pid = ask(conn)
        finally:
            conn.close()
        if status == 200:
            seen.add(pid)
        time.sleep(0.05)
    assert len(seen) == 2, f"only workers {seen} answered:\n{server.log}"
    return sorted(seen)


def test_kept_alive_connections_are_split_evenly_over_the_workers(start_server) -> None:
    server: Server = start_server(WHO, SAGEMAKER_MODEL_SERVER_WORKERS="2", TOOLKIT_PRELOAD_MODEL="true")
    both_workers(server)  # both are up (/ping 200 says only that one is)
    conns = [connect(server) for _ in range(8)]
    try:
        owners = []
        for conn in conns:  # one at a time, as a client opening its pool does
            status, pid = ask(conn)
            assert status == 200
            owners.append(pid)
        assert sorted(Counter(owners).values()) == [4, 4], owners
        for conn, owner in zip(conns, owners):  # each connection stays with its worker
            assert ask(conn) == (200, owner)
    finally:
        for conn in conns:
            conn.close()


def test_a_replacement_loading_its_model_gets_no_new_connections(start_server) -> None:
    server: Server = start_server(WHO, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    survivor, victim = both_workers(server)
    (server.base / "model" / "slow").write_text("")  # the replacement's model_fn waits for "loaded"
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: set(server.worker_pids()) - {survivor, victim}, 60, f"a replacement worker:\n{server.log}")
    # while the replacement loads, every new connection goes to the survivor: no 503 "model is loading"
    answers = []
    for _ in range(10):
        conn = connect(server)
        try:
            answers.append(ask(conn))
        finally:
            conn.close()
    assert answers == [(200, survivor)] * 10, server.log
    # once loaded, the replacement takes its share of new connections
    (server.base / "model" / "loaded").write_text("")
    assert set(both_workers(server)) - {survivor}


def test_a_stopped_worker_does_not_hold_up_new_connections(start_server) -> None:
    server: Server = start_server(WHO, SAGEMAKER_MODEL_SERVER_WORKERS="2", TOOLKIT_PRELOAD_MODEL="true")
    both_workers(server)
    first, second = connect(server), connect(server)
    stopped = None
    extra: list[http.client.HTTPConnection] = []
    try:
        live, stopped = ask(first)[1], ask(second)[1]
        assert live != stopped
        os.kill(stopped, signal.SIGSTOP)  # its event loop is frozen with the fewest connections
        # kill() returns before every thread has stopped: a thread still running could accept the next
        # connection and then freeze with it (seen with the event loop on a thread of its own)
        wait_for(lambda: all(_state(stopped, task) == "T" for task in os.listdir(f"/proc/{stopped}/task")), 10,
                 "the worker's threads to stop")
        for _ in range(4):  # the live worker takes them all (after at most balance.STALE_AFTER)
            extra.append(connect(server))
            assert ask(extra[-1]) == (200, live), server.log
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        for conn in (first, second, *extra):
            conn.close()


def test_a_worker_holding_all_connections_sheds_half_to_the_other(start_server) -> None:
    # the gate only places new connections: once one worker holds them all (here the other was frozen
    # while they were opened; in use: a burst of reconnects, a replacement after a crash), it closes the
    # excess after their next answer and the clients reconnect to the other; no request fails
    server: Server = start_server(WHO, SAGEMAKER_MODEL_SERVER_WORKERS="2", TOOLKIT_PRELOAD_MODEL="true")
    both_workers(server)
    stopped = None
    conns: list[http.client.HTTPConnection] = []
    try:
        stopped = both_workers(server)[0]
        os.kill(stopped, signal.SIGSTOP)
        wait_for(lambda: all(_state(stopped, task) == "T" for task in os.listdir(f"/proc/{stopped}/task")), 10,
                 "the worker's threads to stop")
        for _ in range(8):
            conns.append(connect(server))
            status, live = ask(conns[-1])
            assert status == 200 and live != stopped, server.log
        os.kill(stopped, signal.SIGCONT)
        stopped = None
        owners: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # http.client reconnects by itself after Connection: close
            answers = [ask(conn) for conn in conns]
            assert all(status == 200 for status, _ in answers), answers
            owners = [pid for _, pid in answers]
            if len(set(owners)) == 2 and min(Counter(owners).values()) >= 3:
                break
            time.sleep(0.05)
        assert sorted(Counter(owners).values()) == [4, 4], (owners, server.log)
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        for conn in conns:
            conn.close()


def _clock(monkeypatch) -> list[float]:
    """The balance table's clock, moved by hand (the module's own ``time`` only)."""
    clock = [100.0]
    monkeypatch.setattr(balance_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    return clock


def test_a_worker_sheds_what_it_holds_over_its_share_only_after_shed_after(monkeypatch) -> None:
    clock = _clock(monkeypatch)
    balance = Balance(3)
    a, b, c = balance.slot(0), balance.slot(1), balance.slot(2)
    b.may_accept(1)  # (publishes its count)
    c.may_accept(2)
    assert not a.may_accept(12) and a.excess == 0  # counts can be out of date: not at once
    clock[0] += SHED_AFTER / 2
    b.may_accept(12)  # evened out meanwhile (the others had not yet published what they accepted)
    c.may_accept(12)
    assert a.may_accept(12) and a.excess == 0
    b.may_accept(1)
    c.may_accept(2)
    assert not a.may_accept(12)
    clock[0] += SHED_AFTER
    b.may_accept(1)  # (alive: an entry older than STALE_AFTER is not counted)
    c.may_accept(2)
    assert not a.may_accept(12) and a.excess == 7  # the share of 15 over 3 workers is 5
    a.excess = 0
    clock[0] += SHED_AFTER / 2
    assert not a.may_accept(12) and a.excess == 0  # not again before the clients had time to reconnect
    balance.clear(1)
    balance.clear(2)
    clock[0] += SHED_AFTER
    assert a.may_accept(12) and a.excess == 0  # alone: holds them all


def test_with_many_connections_a_small_difference_is_not_shed(monkeypatch) -> None:
    clock = _clock(monkeypatch)
    balance = Balance(2)
    a, b = balance.slot(0), balance.slot(1)
    for _ in range(3):
        b.may_accept(300)
        assert not a.may_accept(318)  # over the fewest by more than 1/32, within 1/32 of the share (309)
        clock[0] += SHED_AFTER
    assert a.excess == 0
    b.may_accept(300)
    assert not a.may_accept(330) and a.excess == 0
    clock[0] += SHED_AFTER
    b.may_accept(300)
    assert not a.may_accept(330) and a.excess == 15


def test_the_least_loaded_ready_worker_accepts() -> None:
    balance = Balance(3)
    a, b, c = balance.slot(0), balance.slot(1), balance.slot(2)
    assert a.may_accept(0) and b.may_accept(0) and c.may_accept(0)  # ties: all may
    assert not a.may_accept(1)  # one more than the others: leaves the next to them
    assert b.may_accept(0)
    assert balance.counts() == {0: 1, 1: 0, 2: 0}
    c.leave()  # stopping: no longer counted
    balance.clear(1)  # its worker died: no longer counted
    assert a.may_accept(1)
    # a worker still loading its model is not counted and accepts only when no one else can
    assert not b.may_accept(0, ready=False)
    assert a.may_accept(5)
    balance.clear(0)
    assert b.may_accept(0, ready=False)


def test_a_worker_that_stops_accepting_wakes_the_one_with_fewer() -> None:
    # the one with fewer may be asleep in its event loop without the listening socket (issue 12:
    # 80 idle connections at once delayed the first /ping by 4 s); a write to its pipe wakes it
    balance = Balance(2)
    a, b = balance.slot(0), balance.slot(1)
    assert a.may_accept(0) and b.may_accept(0)
    assert not a.may_accept(1)
    assert os.read(b.wake_fd, 16) == b"!"
    assert not a.may_accept(1)  # still refusing: no second wake-up
    try:
        os.read(b.wake_fd, 16)
        raise AssertionError("woken twice")
    except BlockingIOError:
        pass
    assert b.may_accept(0)


def test_with_many_connections_a_worker_may_hold_a_few_more_and_a_lone_worker_always_accepts() -> None:
    balance = Balance(2)
    a, b = balance.slot(0), balance.slot(1)
    assert b.may_accept(640)
    assert a.may_accept(660) and not a.may_accept(661)  # 1/32 over the fewest: accepts come in batches
    balance.clear(1)
    assert a.may_accept(100_000)  # no other worker counts: always
