"""``ServingEnv``: what ``serve`` reads from its environment mapping, parsed once into a frozen
object. Part of toolkit.environment (which re-exports it), in a module of its own so that ``train``
does not build this class (toolkit/environment.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional

from toolkit import settings
from toolkit.environment import check_entry_point, cpu_count
from toolkit.errors import ConfigError
from toolkit.log import INFO


@dataclass(frozen=True)
class ServingEnv:
    """Everything ``serve`` needs to know, read once from the environment mapping.

    SAGEMAKER_MODEL_SERVER_TIMEOUT is in seconds here (Multi Model Server read it as minutes).
    """

    base_dir: Path
    environ: Mapping[str, str]
    port: int = 8080
    host: str = "0.0.0.0"
    safe_port_range: Optional[tuple[int, int]] = None
    workers: int = 1
    threads: int = 8  # requests one worker runs at once (toolkit.serving.eventloop)
    timeout: float = 60.0
    max_payload_mb: int = 6
    default_accept: str = "application/json"
    program: str = "inference.py"
    submit_dir: Optional[str] = None
    max_concurrent_transforms: int = 1
    batch_strategy: str = "MULTI_RECORD"
    preload_model: bool = False
    log_ping: bool = False
    log_level: int = INFO
    multi_model: bool = False
    stop_seconds: float = 28.0
    max_models: int = 0  # multi-model: at most this many loaded at once; 0 = no limit
    memory_headroom_mb: int = 512  # multi-model: refuse a load (507) with less memory than this available
    idle_seconds: float = 120.0  # a connection with no request in progress is closed after this long
    header_seconds: float = 20.0  # a request's line and headers must arrive within this of its first byte
    body_seconds: float = 60.0  # its body within this of the end of its headers
    probe_model_loads: bool = True  # multi-model: load each model once in a throwaway process first
    max_batch_size: int = 1  # dynamic batching for models that declare none; 1 = off (toolkit.serving.batching)
    max_batch_wait_ms: float = 5.0
    metrics_port: int = 0  # Prometheus metrics on this port, served by the supervisor; 0 = off
    access_log: bool = True  # one line per request (toolkit.serving.observer)
    max_requests: int = 0  # recycle a worker after this many requests (plus jitter); 0 = never
    max_requests_jitter: int = 0
    max_rss_mb: int = 0  # recycle a worker whose RSS passes this; 0 = never
    loop_handoff_ms: float = 20.0  # see toolkit.serving.eventloop; 0 = every request on a request thread
    gil_switch_ms: float = 0.0  # a worker's sys.setswitchinterval; 0 = Python's own (5 ms). See serving.md
    gc_freeze: bool = True  # freeze the heap once the model is loaded (toolkit.serving.heap)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], base_dir: Optional[str] = None) -> ServingEnv:
        """Parse the serving variables; raises ``ConfigError`` naming the variable and a valid value."""

        def read(name: str) -> Any:
            return settings.read(environ, name)

        port = read("SAGEMAKER_BIND_TO_PORT")
        metrics_port = read("TOOLKIT_METRICS_PORT")
        if metrics_port and metrics_port == port:
            raise ConfigError(f"TOOLKIT_METRICS_PORT={metrics_port} is not a free TCP port beside "
                              f"SAGEMAKER_BIND_TO_PORT={port}; expected e.g. 9090, or 0 for no metrics")
        return cls(
            base_dir=settings.base_dir(environ, base_dir),
            environ=MappingProxyType(dict(environ)),
            port=port,
            host=read("TOOLKIT_BIND_HOST"),
            safe_port_range=read("SAGEMAKER_SAFE_PORT_RANGE"),
            workers=read("SAGEMAKER_MODEL_SERVER_WORKERS") or cpu_count(),
            threads=read("TOOLKIT_SERVER_THREADS"),
            timeout=read("SAGEMAKER_MODEL_SERVER_TIMEOUT"),
            max_payload_mb=read("SAGEMAKER_MAX_PAYLOAD_IN_MB"),
            default_accept=read("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
            program=str(check_entry_point(read("SAGEMAKER_PROGRAM") or cls.program, "SAGEMAKER_PROGRAM")),
            submit_dir=read("SAGEMAKER_SUBMIT_DIRECTORY"),
            max_concurrent_transforms=read("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"),
            batch_strategy=read("SAGEMAKER_BATCH_STRATEGY"),
            preload_model=read("TOOLKIT_PRELOAD_MODEL"),
            log_ping=read("TOOLKIT_LOG_PING"),
            log_level=settings.log_level(environ),
            multi_model=read("SAGEMAKER_MULTI_MODEL"),
            stop_seconds=read("TOOLKIT_SERVE_STOP_SECONDS"),
            max_models=read("TOOLKIT_MAX_MODELS"),
            memory_headroom_mb=read("TOOLKIT_MEMORY_HEADROOM_MB"),
            idle_seconds=read("TOOLKIT_IDLE_SECONDS"),
            header_seconds=read("TOOLKIT_HEADER_SECONDS"),
            body_seconds=read("TOOLKIT_BODY_SECONDS"),
            probe_model_loads=read("TOOLKIT_PROBE_MODEL_LOADS"),
            max_batch_size=read("TOOLKIT_MAX_BATCH_SIZE"),
            max_batch_wait_ms=read("TOOLKIT_MAX_BATCH_WAIT_MS"),
            metrics_port=metrics_port,
            access_log=read("TOOLKIT_ACCESS_LOG"),
            max_requests=read("TOOLKIT_MAX_REQUESTS"),
            max_requests_jitter=read("TOOLKIT_MAX_REQUESTS_JITTER"),
            max_rss_mb=read("TOOLKIT_MAX_RSS_MB"),
            loop_handoff_ms=read("TOOLKIT_LOOP_HANDOFF_MS"),
            gil_switch_ms=read("TOOLKIT_GIL_SWITCH_MS"),
            gc_freeze=read("TOOLKIT_GC_FREEZE"),
        )

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def code_dir(self) -> Path:
        """Where the inference code is when no submit directory is given: /opt/ml/model/code."""
        return self.model_dir / "code"

    @property
    def max_payload_bytes(self) -> Optional[int]:
        """The request body limit; None when SAGEMAKER_MAX_PAYLOAD_IN_MB=0 (chunked Batch Transform)."""
        return self.max_payload_mb * 1024 * 1024 if self.max_payload_mb else None

    def settings_view(self) -> Mapping[str, str]:
        """The environment as fetchers and installers receive it."""
        return self.environ
