"""Response streaming: a handler function that returns an iterator sends each item as it is produced.

The WSGI server sends a response without Content-Length as chunked transfer encoding, one chunk
per item (waitress 3 flushes every write: ``send_bytes`` is 1). ``Stream`` is the WSGI body: it
holds the first chunk (fetched before the status line, so an error before it is still an ordinary
JSON error), frames chunks as server-sent events when the client asked for ``text/event-stream``,
and closes the generator (its ``finally`` runs) when the server closes the body because the client
went away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Callable, Optional

from toolkit.serving import mediatypes
from toolkit.serving.handler import HANDLER_FAILURES

log = logging.getLogger("toolkit")

EVENT_STREAM = "text/event-stream"


def is_stream(result: Any) -> bool:
    """Whether a handler result is to be streamed: an iterator (a generator) that is not bytes/str."""
    return isinstance(result, Iterator) and not isinstance(result, (bytes, bytearray, memoryview, str))


def split_event_stream(accept: Optional[str]) -> tuple[bool, Optional[str]]:
    """(whether Accept asks for text/event-stream, the Accept header without it for the handler)."""
    if not accept or EVENT_STREAM not in accept.lower():
        return False, accept
    if EVENT_STREAM not in mediatypes.parse_accept(accept):  # e.g. text/event-stream;q=0
        return False, accept
    rest = [part for part in accept.split(",") if mediatypes.bare(part) != EVENT_STREAM]
    return True, ",".join(rest).strip() or None


def to_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    return bytes(chunk)


def sse_event(chunk: bytes, event: Optional[str] = None) -> bytes:
    """One server-sent event: every line of the chunk as a ``data:`` field, then a blank line."""
    text = chunk.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode("utf-8")


class Stream:
    """The response body of a streamed prediction (an iterator of bytes with ``close``)."""

    def __init__(self, first: Optional[bytes], rest: Iterator[Any], sse: bool,
                 on_close: Optional[Callable[[], None]] = None) -> None:
        self.first = first
        self.rest = rest
        self.sse = sse
        self.on_close = on_close
        self.done = first is None
        self.closed = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> bytes:
        if self.first is not None:
            chunk, self.first = self.first, None
            return sse_event(chunk) if self.sse else chunk
        if self.done:
            raise StopIteration
        try:
            chunk = to_bytes(next(self.rest))
        except StopIteration:
            self.done = True
            raise
        except HANDLER_FAILURES as exc:
            self.done = True
            log.exception("POST /invocations: the handler raised while streaming")
            if not self.sse:  # the server closes the connection without the last chunk: the client sees it cut off
                if isinstance(exc, Exception):
                    raise
                raise RuntimeError(f"the handler raised {type(exc).__name__} while streaming") from exc
            message = f"the model's handler raised {type(exc).__name__} while streaming"
            first_line = (str(exc).splitlines() or [""])[0][:300]
            if first_line:
                message += f": {first_line}"
            return sse_event(json.dumps({"message": message}).encode(), event="error")
        return sse_event(chunk) if self.sse else chunk

    def close(self) -> None:
        """Called by the server when the response ends or the client is gone: stop the generator."""
        if self.closed:
            return
        self.closed = True
        try:
            close = getattr(self.rest, "close", None)
            if close is not None:
                close()
        finally:
            if self.on_close is not None:
                self.on_close()


def start(result: Iterator[Any], sse: bool, on_close: Optional[Callable[[], None]] = None) -> Stream:
    """Fetch the first chunk now (errors raised here are ordinary error responses) and wrap the rest."""
    try:
        first: Optional[bytes] = to_bytes(next(result))
    except StopIteration:
        first = None
    except BaseException:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise
    return Stream(first, result, sse, on_close)
