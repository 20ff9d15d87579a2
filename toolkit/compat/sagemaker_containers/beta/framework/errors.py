"""Stand-in for ``sagemaker_containers.beta.framework.errors``: the classes scripts raise or catch."""

from __future__ import annotations

from typing import Any

from toolkit.compat.importing import module_getattr

__getattr__ = module_getattr(__name__, ("ClientError", "ImportModuleError", "UnsupportedFormatError",
                                                  "ChannelDoesNotExistException"))


class ClientError(Exception):
    """An error the client caused (bad input)."""


class ImportModuleError(ClientError):
    """A module failed to import."""


class UnsupportedFormatError(Exception):
    """A content type this code does not decode or encode."""

    def __init__(self, content_type: str, **kwargs: Any) -> None:
        self.message = (f"Content type {content_type} is not supported by this framework. Please implement input_fn "
                        f"to deserialize the request data or an output_fn to serialize the response.")
        super().__init__(self.message, **kwargs)


class ChannelDoesNotExistException(Exception):
    """A channel the job does not have."""

    def __init__(self, channel_name: str) -> None:
        self.channel_name = channel_name
        super().__init__(f"Channel {channel_name} is not a valid channel")
