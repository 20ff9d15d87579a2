"""sagemaker_inference.environment: the serving variables, read from the environment when used.

``base_dir``, ``model_dir`` and ``code_dir`` are module attributes, as in the real module (which reads
them at import; here they are read when first asked for, which gives the same values in a server).
"""

from __future__ import annotations

import os
from typing import Optional

from . import content_types, parameters

DEFAULT_MODULE_NAME = "inference.py"
DEFAULT_MODEL_SERVER_TIMEOUT = "60"
DEFAULT_STARTUP_TIMEOUT = "600"
DEFAULT_HTTP_PORT = "8080"
DEFAULT_VMARGS = "-XX:-UseContainerSupport"
DEFAULT_MAX_REQUEST_SIZE = None
SAGEMAKER_BASE_PATH = os.path.join("/opt", "ml")


def _base_dir() -> str:
    return os.environ.get(parameters.BASE_PATH_ENV, SAGEMAKER_BASE_PATH)


def _model_dir() -> str:
    multi = os.environ.get(parameters.MULTI_MODEL_ENV) == "true"
    return os.path.join(_base_dir(), "models" if multi else "model")


_LAZY = {"base_dir": _base_dir, "model_dir": _model_dir, "code_dir": lambda: os.path.join(_model_dir(), "code")}


def __getattr__(name: str) -> str:
    if name in _LAZY:
        return _LAZY[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Environment:
    """The serving settings, read from the environment when the object is made."""

    def __init__(self) -> None:
        env = os.environ
        self._module_name = env.get(parameters.USER_PROGRAM_ENV, DEFAULT_MODULE_NAME)
        self._model_server_timeout = int(env.get(parameters.MODEL_SERVER_TIMEOUT_ENV, DEFAULT_MODEL_SERVER_TIMEOUT))
        seconds = env.get(parameters.MODEL_SERVER_TIMEOUT_SECONDS_ENV)
        self._model_server_timeout_seconds = int(seconds) if seconds is not None else None
        self._model_server_workers = env.get(parameters.MODEL_SERVER_WORKERS_ENV)
        self._startup_timeout = int(env.get(parameters.STARTUP_TIMEOUT_ENV, DEFAULT_STARTUP_TIMEOUT))
        self._default_accept = env.get(parameters.DEFAULT_INVOCATIONS_ACCEPT_ENV, content_types.JSON)
        self._inference_http_port = env.get(parameters.BIND_TO_PORT_ENV, DEFAULT_HTTP_PORT)
        self._management_http_port = env.get(parameters.BIND_TO_PORT_ENV, DEFAULT_HTTP_PORT)
        self._safe_port_range = env.get(parameters.SAFE_PORT_RANGE_ENV)
        self._vmargs = env.get(parameters.MODEL_SERVER_VMARGS, DEFAULT_VMARGS)
        self._max_request_size_in_mb = env.get(parameters.MAX_REQUEST_SIZE, DEFAULT_MAX_REQUEST_SIZE)

    @staticmethod
    def _parse_module_name(program_param: Optional[str]) -> Optional[str]:
        if program_param and program_param.endswith(".py"):
            return program_param[:-3]
        return program_param

    @property
    def module_name(self) -> Optional[str]:
        return self._parse_module_name(self._module_name)

    @property
    def model_server_timeout(self) -> int:
        return self._model_server_timeout

    @property
    def model_server_timeout_seconds(self) -> Optional[int]:
        return self._model_server_timeout_seconds

    @property
    def model_server_workers(self) -> Optional[str]:
        return self._model_server_workers

    @property
    def startup_timeout(self) -> int:
        return self._startup_timeout

    @property
    def default_accept(self) -> str:
        return self._default_accept

    @property
    def inference_http_port(self) -> str:
        return self._inference_http_port

    @property
    def management_http_port(self) -> str:
        return self._management_http_port

    @property
    def safe_port_range(self) -> Optional[str]:
        return self._safe_port_range

    @property
    def vmargs(self) -> str:
        return self._vmargs

    @property
    def max_request_size(self) -> Optional[int]:
        """SAGEMAKER_MAX_PAYLOAD_IN_MB in bytes, or None."""
        if self._max_request_size_in_mb is None:
            return None
        return int(self._max_request_size_in_mb) * 1024 * 1024
