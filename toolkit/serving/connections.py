"""What one connection may cost a waitress worker: bounds on idle, slow and oversized requests.

Imported by the built-in waitress server only (it subclasses waitress's channel and parser), never at
start-up. Why each bound (issue 12, all measured against a real ``serve``):

- Idle connections: waitress stops accepting at 100 open connections per worker, so 200 idle
  connections to 2 workers left /ping queued for as long as they stayed open. The connection limit
  is now what the process's file descriptors allow (the soft RLIMIT_NOFILE is raised to the hard
  one), and a connection with no request in progress is closed after ``TOOLKIT_IDLE_SECONDS``
  (waitress's ``channel_timeout``, checked every second).
- Slow requests: waitress resets its idle clock on every byte, so a request that trickles (slowloris
  headers, a body sent a byte at a time) held its connection for ever. A request's line and headers
  must now arrive within ``TOOLKIT_HEADER_SECONDS`` of its first byte, and its body within
  ``TOOLKIT_BODY_SECONDS`` of the end of its headers; past that it is answered 408 and closed. Idle
  and trickling connections never hold a request thread (waitress reads on its event loop), so
  /ping and /invocations are answered while they are open.
- Oversized bodies: a Content-Length (or the chunk sizes so far) over SAGEMAKER_MAX_PAYLOAD_IN_MB is
  answered 413 as soon as the headers (or the chunk size line) say so, without reading the body.
  Closing right after would reset the connection while the client is still sending (urllib and
  boto3 send the whole body before they read the answer, and see ECONNRESET instead of the 413), so
  the connection sends its answer, then reads and drops what the client still sends (the declared
  length, or until the client closes) for at most ``LINGER_SECONDS``, and only then closes.
- A chunk size of more than 16 hex digits (no body is that large) is a 400 at once instead of a
  connection left waiting for 2**72 bytes.
- Every error waitress answers itself (400, 408, 413, 431, 500...) has a JSON body like the app's.

One send per answer: a small answer's head and body leave in one ``send`` (``OneSendTask``).

Shedding: a worker that holds more than its share of connections closes some after their next answer
(``Shedding``; why in toolkit.serving.balance).

Parsed heads are remembered: a client sends the same request line and headers again and again (wrk,
the SageMaker front end, an SDK's client: same path, same Host and Content-Type, and the same
Content-Length whenever the inputs have one size), and waitress's header parsing, pure Python, is
most of reading a request: a 3 KB POST took 14.4 us to parse, 2.7 us with its head remembered (best
of 5 in-process; about 10 % of the echo benchmark's CPU per answer). ``Parser``
keeps what parsing a head set, keyed by the head's exact bytes (``HEADS`` of them, each at most
``HEAD_BYTES``), and gives a request with the same bytes a copy: the parse is a function of those
bytes alone (and of the server's settings: one memory per server), so the answer is the same.
Heads that fail to parse and chunked requests are parsed every time. The WSGI environ made for such
a head is remembered with it, less the entries of the request's connection and body
(``OneSendTask.get_environment``).

One thread hand-off fewer per request (the p99 tail, docs/serving.md): waitress's request thread, once
it has answered, wakes the event loop through the trigger pipe so that the loop polls the connection
for its next request again. The server runs with ``channel_request_lookahead=1``, so the loop keeps
polling a connection for reading while its request runs, and a channel skips that wake-up when the
loop has nothing to do for it: the answer has been sent in full, nothing else is queued and the
connection stays open. The loop then wakes only when the client's next request arrives.
"""

from __future__ import annotations

import json
import logging
import resource
import socket
import time
from typing import Any, Callable, Optional

from waitress.buffers import OverflowableBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import FixedStreamReceiver
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import BadRequest, Error, RequestEntityTooLarge

from toolkit.serving.eventloop import skip_wakeup

log = logging.getLogger("toolkit")

ONE_SEND_MAX = 64 * 1024  # answers up to this size go out in one send (OneSendTask)
LINGER_SECONDS = 10.0  # after an early error answer: read and drop the rest of the body for at most this long
MAX_CHUNK_SIZE = 1 << 64  # 16 hex digits
HEADS = 256  # parsed heads remembered per server (then forgotten all at once, and remembered anew)
HEAD_BYTES = 2048  # longer heads are parsed every time
FD_RESERVE = 64  # file descriptors kept back from connections: the listening socket, pipes, logs, model files
MIN_CONNECTIONS = 100  # waitress's own default connection limit


class JsonErrorTask(ErrorTask):
    """Waitress's error answers (malformed request, 413, 431, an app that raised...) as JSON."""

    def execute(self) -> None:
        error = self.request.error
        message = error.body if isinstance(error, _Ours) else f"{error.reason}: {error.body}"
        body = json.dumps({"message": message}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Shedding:
    """How many connections this worker still closes after their next answer: set by the worker's
    balancing, counted down by the answers (``OneSendTask``), one per server."""

    left = 0


class OneSendTask(WSGITask):
    """Sends a small answer's status line, headers and body in one ``send`` instead of two.

    Waitress writes the head and then the body, and (its ``send_bytes`` is 1) sends each write at
    once: two system calls and two TCP segments per answer, each segment a wake-up of the client.
    The first write is held back here while waitress makes the head, then both go out together.
    Bodies over ``ONE_SEND_MAX`` and later writes (a stream's chunks) go as waitress sends them."""

    def get_environment(self) -> dict:
        """Waitress's environ; for a remembered head, a copy of the one made the first time with this
        request's connection and body put in (the rest comes from the head and the server alone)."""
        environ = self.environ
        if environ is not None:
            return environ
        request = self.request
        known = getattr(request, "known", None)
        if known is None or known.environ is None:
            environ = super().get_environment()
            if known is not None:
                known.environ = {k: v for k, v in environ.items() if k not in _PER_REQUEST}
            return environ
        environ = known.environ.copy()
        channel = self.channel
        addr = channel.addr
        environ["REMOTE_ADDR"] = environ["REMOTE_HOST"] = addr[0]
        environ["REMOTE_PORT"] = str(addr[1])
        environ["wsgi.input"] = request.get_body_stream()
        environ["waitress.client_disconnected"] = channel.check_client_disconnected
        self.environ = environ
        return environ

    def build_response_header(self) -> bytes:
        channel = self.channel
        shedding = channel.shedding
        if shedding.left > 0 and len(channel.requests) == 1 and channel.request is None:  # nothing queued
            shedding.left -= 1
            self.set_close_on_finish()
        return super().build_response_header()

    def write(self, data: bytes) -> None:
        if self.wrote_header or not data or len(data) > ONE_SEND_MAX:
            super().write(data)
            return
        channel = self.channel
        held: list[bytes] = []
        channel.write_soon = held.append  # this call's writes, by this thread only (its request is in service)
        try:
            super().write(data)
        finally:
            del channel.write_soon
        if held:
            channel.write_soon(b"".join(held))


class _Ours:
    """Marks the errors whose body is already the whole message."""


class PayloadTooLarge(_Ours, RequestEntityTooLarge):
    pass


class BadChunkSize(_Ours, BadRequest):
    pass


class RequestTimeout(_Ours, Error):
    code = 408
    reason = "Request Timeout"


class Limits:
    """The settings one server's channels follow (``ServingEnv``, read once)."""

    def __init__(self, env: Any, too_large: Callable[[Optional[int]], str]) -> None:
        self.max_body = env.max_payload_bytes  # None: no limit (SAGEMAKER_MAX_PAYLOAD_IN_MB=0)
        self.too_large = too_large  # the 413 message for a body of that many bytes (None: chunked, unknown)
        self.header_seconds = env.header_seconds
        self.body_seconds = env.body_seconds


def make_channel_class(limits: Limits) -> type:
    """The channel class a waitress server of these limits uses (``server.channel_class``)."""
    return type("Channel", (Channel,), {"limits": limits, "shedding": Shedding(), "heads": {}})


_OWN = frozenset({"headers", "body_rcv", "known"})  # a parser's own objects, made anew for each request
_PER_REQUEST = frozenset({"REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "wsgi.input", "waitress.client_disconnected"})


class Head:
    """What parsing one head set (``Parser``), and the WSGI environ made from it less its
    connection's and its body's entries (``OneSendTask``)."""

    __slots__ = ("environ", "headers", "state")

    def __init__(self, state: dict, headers: dict) -> None:
        self.state = state
        self.headers = headers
        self.environ: Optional[dict] = None


class Parser(HTTPRequestParser):
    """Waitress's parser, plus the exact body limit and the chunk size check, made as soon as the
    headers or a chunk size line say so (waitress itself counts chunked bodies with their framing)."""

    channel: Channel
    known: Optional[Head] = None  # its head as remembered (None: parsed every time)

    def parse_header(self, header_plus: bytes) -> None:
        heads = self.channel.heads
        known = heads.get(header_plus)
        if known is not None:
            self.__dict__.update(known.state)
            self.headers = dict(known.headers)
            self.known = known
            if self.content_length > 0:  # (as waitress makes it for a fixed-length body)
                self.body_rcv = FixedStreamReceiver(self.content_length, OverflowableBuffer(self.adj.inbuf_overflow))
            return
        before = dict(self.__dict__)
        super().parse_header(header_plus)  # (raises for a bad head: nothing is remembered)
        if self.chunked or len(header_plus) > HEAD_BYTES:
            return
        state = {name: value for name, value in self.__dict__.items()
                 if name not in _OWN and (name not in before or before[name] is not value)}
        if len(heads) >= HEADS:
            heads.clear()
        self.known = heads[header_plus] = Head(state, dict(self.headers))

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if not self.headers_finished:
            return consumed
        if not self.completed or isinstance(self.error, RequestEntityTooLarge):  # (waitress's own: our message)
            error = self._refusal()
            if error is not None:
                self.error = error
                self.completed = True
                self.expect_continue = False  # no "100 Continue" for a body that is refused
        if not self.completed:
            return consumed
        if self.error is None or self.body_rcv is None or self.body_rcv.completed:
            return consumed  # complete, or refused with nothing of its body left to come
        # refused before its body was read (here, or by waitress: a bad chunk, its own size limit)
        if self.chunked:
            unread = None  # until the client stops sending
        else:
            unread = max(self.content_length - self.body_bytes_received - (len(data) - consumed), 0)
        self.channel.discard(unread)
        return len(data)  # what came with the headers is part of the body being refused

    def _refusal(self) -> Optional[Error]:
        limits = self.channel.limits
        if self.chunked:
            receiver = self.body_rcv
            pending = receiver.chunk_remainder if receiver is not None else 0
            if pending >= MAX_CHUNK_SIZE:
                return BadChunkSize("a chunk size of more than 16 hex digits is not a valid size")
            if limits.max_body is not None and len(receiver) + pending > limits.max_body:
                return PayloadTooLarge(limits.too_large(None))
        elif limits.max_body is not None and self.content_length > limits.max_body:
            return PayloadTooLarge(limits.too_large(self.content_length))
        return None


class Channel(HTTPChannel):
    """A waitress channel that times its partial request and drains a refused body before closing."""

    limits: Limits
    shedding: Shedding
    heads: dict  # head bytes -> what parsing them set (Parser), shared by the server's channels
    error_task_class = JsonErrorTask
    task_class = OneSendTask
    partial: Any = None  # the request being received, whose times these are
    started = 0.0  # monotonic: its first byte, or when the channel could read again after serving
    body_started: Optional[float] = None  # when its headers were complete
    unread: Optional[int] = None  # bytes of a refused body still to drop (None: until the client stops)
    draining_until = 0.0  # monotonic deadline for dropping a refused body; 0: not refusing one
    lingering = False  # the answer is out: only dropping what the client still sends, then closing

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser_class = self._parser  # per channel, so that the parser can tell this channel
        if self.adj.channel_request_lookahead >= 1:
            self.server = _QuietTrigger(self.server, self)

    def _parser(self, adj: Any) -> Parser:
        parser = Parser(adj)
        parser.channel = self
        return parser

    # -- timing the request being received ----------------------------------------------------

    def received(self, data: bytes) -> bool:
        if self.draining_until:
            self._drop(len(data))
            return True
        before = self.request
        result = super().received(data)
        request = self.request
        if request is not None:
            now = time.monotonic()
            if request is not before:
                self.partial, self.started, self.body_started = request, now, None
            if request.headers_finished and self.body_started is None:
                self.body_started = now
        return result

    def service(self) -> None:
        super().service()
        self.started = time.monotonic()  # a request that waited behind this one is timed from now

    def overdue(self, now: float) -> Optional[str]:
        """Why the request being received has taken too long, or None."""
        request = self.request
        if request is None or request is not self.partial or self.requests or request.completed:
            return None
        limits = self.limits
        if self.body_started is None:
            if limits.header_seconds > 0 and now - self.started > limits.header_seconds:
                return (f"the request line and headers did not arrive within TOOLKIT_HEADER_SECONDS="
                        f"{limits.header_seconds:g} s")
        elif limits.body_seconds > 0 and now - max(self.body_started, self.started) > limits.body_seconds:
            return f"the request body did not arrive within TOOLKIT_BODY_SECONDS={limits.body_seconds:g} s"
        return None

    def time_out(self, reason: str) -> None:
        """Answer 408 for the request being received and close (from the event loop's thread)."""
        with self.requests_lock:
            request = self.request
            if request is None or self.requests or self.will_close or self.close_when_flushed:
                return
            self.request = None
            request.close()  # its body so far may be in a temporary file
            error = RequestTimeout(reason)
            body = json.dumps({"message": reason}).encode("utf-8")
            try:
                self.write_soon(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (error.code, error.reason.encode(), len(body), body))
            except Exception:  # the client is gone
                self.will_close = True
                return
            self.close_when_flushed = True

    # -- refusing a body without resetting the connection -------------------------------------

    def discard(self, unread: Optional[int]) -> None:
        """The request being parsed was refused before its body was read: drop the body as it comes."""
        self.unread = unread
        self.draining_until = time.monotonic() + LINGER_SECONDS

    def _drop(self, size: int) -> None:
        if self.unread is not None:
            self.unread = max(self.unread - size, 0)

    def handle_close(self) -> None:
        if self.draining_until and not self.lingering and self.unread != 0 and self.connected:
            # the answer is out (or the client closed): keep reading what it still sends, then close
            self.lingering = True  # nothing to write, nothing pending: waitress polls it for reading only
            self.will_close = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
                return
            except OSError:
                pass
        self.lingering = False
        super().handle_close()

    def handle_read(self) -> None:
        if not self.lingering:
            super().handle_read()
            return
        try:
            data = self.socket.recv(65536)
        except OSError:
            data = b""
        self._drop(len(data))
        if not data or self.unread == 0 or time.monotonic() > self.draining_until:
            self.handle_close()


class _QuietTrigger:
    """The server as one channel sees it: ``pull_trigger`` wakes the event loop only when the loop
    has something to do for this channel (data to send, a close, a request queued behind the one
    answered, a connection no longer polled for reading); everything else is the server's."""

    def __init__(self, server: Any, channel: Channel) -> None:
        self._server = server
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def pull_trigger(self) -> None:
        if skip_wakeup():  # the loop's own thread answered: it sends and polls next anyway
            return
        channel = self._channel
        if (channel.requests or channel.total_outbufs_len or channel.will_close or channel.close_when_flushed
                or not channel.connected or channel.lingering or channel.draining_until):
            self._server.pull_trigger()


def sweep(server: Any, now: float) -> None:
    """Close what has overstayed: requests arriving too slowly (408), refused bodies drained too long."""
    for channel in list(server.active_channels.values()):
        if not isinstance(channel, Channel):
            continue
        if channel.lingering:
            if now > channel.draining_until:
                channel.handle_close()
            continue
        reason = channel.overdue(now)
        if reason is not None:
            log.info("connection from %s: %s: answered 408", channel.addr, reason)
            channel.time_out(reason)


def connection_limit() -> int:
    """Open connections one worker may hold: what its file descriptors allow, after raising the soft
    RLIMIT_NOFILE to the hard one (a container's soft limit is often 1024 under a far higher hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.warning("could not raise the open file limit from %d to %d", soft, wanted)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(soft - FD_RESERVE, MIN_CONNECTIONS)
