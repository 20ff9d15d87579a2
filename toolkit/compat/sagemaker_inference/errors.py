"""The exceptions of sagemaker_inference.errors. Raised from a handler function, a
``BaseInferenceToolkitError`` answers with its ``status_code`` and ``message``; an
``UnsupportedFormatError`` answers 415 (request) or 406 (answer)."""

from __future__ import annotations

from typing import Any, Optional


class UnsupportedFormatError(Exception):
    """A content type the decoder or encoder does not handle."""

    def __init__(self, content_type: Any, **kwargs: Any) -> None:
        self._message = (f"Content type {content_type} is not supported by this framework.\n\n"
                         f"Implement input_fn to deserialize the request data or output_fn to serialize the "
                         f"response.")
        super().__init__(self._message, **kwargs)


class BaseInferenceToolkitError(Exception):
    """An error with the HTTP status, message and reason phrase the client gets."""

    def __init__(self, status_code: int, message: str, phrase: str) -> None:
        self.status_code = status_code
        self.message = message
        self.phrase = phrase
        super().__init__(status_code, message, phrase)


class GenericInferenceToolkitError(BaseInferenceToolkitError):
    """A ``BaseInferenceToolkitError`` whose message and phrase may be left out."""

    def __init__(self, status_code: int, message: Optional[str] = None, phrase: Optional[str] = None) -> None:
        message = message or "Invalid Request"
        super().__init__(status_code, message, phrase or message)
