"""What the server needs from an inference handler; ``toolkit_load_handler`` returns one."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from toolkit.serving.context import RequestContext

# What a call into user code may raise that the server answers (500) instead of letting it escape:
# ``raise SystemExit`` or ``KeyboardInterrupt`` in a handler would otherwise unwind the server's own
# request thread, leaving its client without an answer and the thread gone.
HANDLER_FAILURES = (Exception, SystemExit, KeyboardInterrupt)


class Handler:
    """Base class for handlers. Subclass it in a ``toolkit_load_handler`` plugin.

    ``problem`` is a one-line reason the handler cannot serve (no model_fn, model_fn raised...):
    while it is set, /ping answers 503 and /invocations 503 with it.
    """

    problem: Optional[str] = None

    def load_model(self) -> None:
        """Load (and warm) the model; called once per process before the first request."""

    def invoke(self, body: bytes, content_type: str, accept: Optional[str], context: RequestContext) -> tuple[Any, str]:
        """Answer one request: return (response body as bytes or str, its media type).

        ``content_type`` and ``accept`` are the raw header values (``accept`` None when absent).
        Raise ``toolkit.ClientError`` for a 4xx; any other exception (``SystemExit`` and
        ``KeyboardInterrupt`` too) is a 500.
        """
        raise NotImplementedError

    def execution_parameters(self, context: RequestContext) -> Optional[Mapping[str, Any]]:
        """Batch Transform parameters the model prefers, or None for the environment's."""
        return None

    @property
    def needs_context(self) -> bool:
        """Whether ``invoke`` reads the context; when False, the server passes a cheap one."""
        return True
