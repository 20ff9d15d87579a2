"""sagemaker-toolkit: a pluggable runtime for containers that follow the Amazon SageMaker contract.

This module only re-exports: the hook marker for plugin authors, the version and the public types.
They are imported on first use (PEP 562), so ``import toolkit`` and ``train --help`` load neither
pluggy nor the standard modules it needs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; type checkers read it as True
if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from typing import Any

    from toolkit.environment import V3_MASTER_PORT, ProcessingEnv, ServingEnv, TrainingEnv, positive_int
    from toolkit.errors import ClientError, CodeError, ConfigError, FetchError, ToolkitError
    from toolkit.hookspecs import hookimpl
    from toolkit.process import Supervisor, signal_name
    from toolkit.serving.codecs import Codecs
    from toolkit.serving.handler import Handler
    from toolkit.serving.worker import Worker
    from toolkit.types import Command, Outcome

__version__ = "0.1.0"

# Everything a plugin needs: the marker, what hooks receive (the environments, Outcome, a serving
# worker, the codecs) and return (Command, a Handler), the errors to raise, the helpers the
# first-party launchers read settings with, and the core's one process supervisor (launchers that
# start their own children use it).
_EXPORTS = {
    "ClientError": "toolkit.errors",
    "CodeError": "toolkit.errors",
    "Codecs": "toolkit.serving.codecs",
    "Command": "toolkit.types",
    "ConfigError": "toolkit.errors",
    "FetchError": "toolkit.errors",
    "Handler": "toolkit.serving.handler",
    "Outcome": "toolkit.types",
    "ProcessingEnv": "toolkit.environment",
    "ServingEnv": "toolkit.environment",
    "Supervisor": "toolkit.process",
    "ToolkitError": "toolkit.errors",
    "TrainingEnv": "toolkit.environment",
    "V3_MASTER_PORT": "toolkit.environment",
    "Worker": "toolkit.serving.worker",
    "hookimpl": "toolkit.hookspecs",
    "positive_int": "toolkit.environment",
    "signal_name": "toolkit.process",
}

__all__ = [
    "V3_MASTER_PORT",
    "ClientError",
    "CodeError",
    "Codecs",
    "Command",
    "ConfigError",
    "FetchError",
    "Handler",
    "Outcome",
    "ProcessingEnv",
    "ServingEnv",
    "Supervisor",
    "ToolkitError",
    "TrainingEnv",
    "Worker",
    "__version__",
    "hookimpl",
    "positive_int",
    "signal_name",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
