"""The helpers of sagemaker_inference.utils."""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

CONTENT_TYPE_REGEX = re.compile("^[Cc]ontent-?[Tt]ype")


def read_file(path: str, mode: str = "r") -> Any:
    with open(path, mode) as f:
        return f.read()


def write_file(path: str, data: Any, mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write(data)


def retrieve_content_type_header(request_property: Mapping[str, Any]) -> Optional[str]:
    """The Content-Type of request headers, however the name is spelled (Content-Type, ContentType, content-type)."""
    for key, value in request_property.items():
        if CONTENT_TYPE_REGEX.match(key):
            return value
    return None


def parse_accept(accept: str) -> list[str]:
    """The media types of an Accept header, as written (spaces removed, parameters kept)."""
    return accept.replace(" ", "").split(",")


def remove_crlf(illegal_string: str) -> str:
    """The string with carriage returns and line feeds replaced by spaces (for HTTP reason phrases)."""
    return illegal_string.replace("\r", " ").replace("\n", " ")
