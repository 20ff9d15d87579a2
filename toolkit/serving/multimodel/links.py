"""The supervisor's two lines to each worker, made before the worker is forked.

``requests``: the worker asks the supervisor to load or unload a model (a POST /models or DELETE
/models/{name} it received) and waits for the answer. ``commands``: the supervisor tells the worker to
load, unload or start serving, and waits for its acknowledgement. Both carry one JSON object per line,
and each side sends one message and waits for its answer, so no line is ever interleaved.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any, Optional


class Line:
    """One end of a socketpair speaking JSON lines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.lock = threading.Lock()

    def send(self, message: dict) -> bool:
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
            return True
        except OSError:
            return False

    def receive(self) -> Optional[dict]:
        """The next message; None when the other side is gone."""
        try:
            line = self.reader.readline()
        except (OSError, ValueError):
            return None
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            return None  # not from our side of the line: treat the peer as gone
        return message if isinstance(message, dict) else None

    def call(self, message: dict) -> Optional[dict]:
        """Send and wait for the answer (one call at a time per line)."""
        with self.lock:
            if not self.send(message):
                return None
            return self.receive()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class WorkerSockets:
    """A worker's two socketpairs; each process closes the ends that are not its own after fork."""

    def __init__(self) -> None:
        self._requests = socket.socketpair()
        self._commands = socket.socketpair()
        self.supervisor_side: Optional[tuple[Line, Line]] = None  # (requests, commands)
        self.worker_side: Optional[tuple[Line, Line]] = None

    def in_supervisor(self) -> tuple[Line, Line]:
        self._requests[1].close()
        self._commands[1].close()
        self.supervisor_side = (Line(self._requests[0]), Line(self._commands[0]))
        return self.supervisor_side

    def in_worker(self) -> tuple[Line, Line]:
        self._requests[0].close()
        self._commands[0].close()
        self.worker_side = (Line(self._requests[1]), Line(self._commands[1]))
        return self.worker_side

    def closed(self) -> bool:
        """Whether the supervisor has closed its ends (the worker is gone)."""
        return self._requests[0].fileno() == -1

    def close_supervisor_side(self) -> None:
        """In a worker forked later: this is another worker's channel, not ours. The fds are closed
        without touching the supervisor's reader objects, whose locks a supervisor thread may have
        held at fork time."""
        for sock in self._requests[0], self._commands[0]:
            close_in_child(sock)


def close_in_child(sock: socket.socket) -> None:
    fd = sock.detach()  # the object forgets the fd (no second close later), no locks taken
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def reply(status: int, **body: Any) -> dict:
    return {"status": status, "body": body}
