"""sagemaker-toolkit: a pluggable runtime for containers that follow the SageMaker contract.

This module only re-exports: the hook marker for plugin authors, the version and the public types.
"""

from toolkit.errors import ClientError, CodeError, ConfigError, FetchError, ToolkitError
from toolkit.hookspecs import hookimpl
from toolkit.types import Command

__version__ = "0.1.0"

__all__ = [
    "ClientError",
    "CodeError",
    "Command",
    "ConfigError",
    "FetchError",
    "ToolkitError",
    "__version__",
    "hookimpl",
]
