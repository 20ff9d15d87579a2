"""``ServingEnv``: what ``serve`` reads from its environment mapping, parsed once into a frozen
object. Part of toolkit.environment (which re-exports it), in a module of its own so that ``train``
does not build this class (toolkit/environment.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

from toolkit import settings
from toolkit.environment import DEFAULT_BASE_DIR, _true, check_entry_point, cpu_count, log_level_from
from toolkit.errors import ConfigError
from toolkit.log import INFO


def _int_setting(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return int(settings.number(environ, name, default, whole=True, minimum=minimum))


def _port_range(environ: Mapping[str, str]) -> Optional[tuple[int, int]]:
    raw = (environ.get("SAGEMAKER_SAFE_PORT_RANGE") or "").strip()
    if not raw:
        return None
    low, sep, high = raw.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) > int(high):
        raise ConfigError(f"SAGEMAKER_SAFE_PORT_RANGE={raw!r} is not a range like 20000-20999")
    return int(low), int(high)


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
    threads: int = 8  # 8, not waitress's 4: p99 at 16 connections fell from ~17 ms to ~9 ms (docs/benchmarks.md)
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
    gil_switch_ms: float = 0.0  # a worker's sys.setswitchinterval; 0 = Python's own (5 ms). See serving.md

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], base_dir: Optional[str] = None) -> ServingEnv:
        """Parse the serving variables; raises ``ConfigError`` naming the variable and a valid value."""

        def flag(name: str) -> bool:
            return _true(environ.get(name) or "")

        port = _int_setting(environ, "SAGEMAKER_BIND_TO_PORT", 8080, minimum=0)
        if port > 65535:
            raise ConfigError(f"SAGEMAKER_BIND_TO_PORT={port} is not a TCP port; expected 1-65535, e.g. 8080")
        strategy = (environ.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD").strip().upper()
        if strategy not in {"MULTI_RECORD", "SINGLE_RECORD"}:
            raise ConfigError(f"SAGEMAKER_BATCH_STRATEGY={strategy!r}: expected MULTI_RECORD or SINGLE_RECORD")
        timeout = float(settings.number(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0, minimum=0))
        stop_seconds = float(settings.number(environ, "TOOLKIT_SERVE_STOP_SECONDS", 28.0, minimum=0))
        metrics_port = _int_setting(environ, "TOOLKIT_METRICS_PORT", 0)
        if metrics_port > 65535 or (metrics_port and metrics_port == port):
            raise ConfigError(f"TOOLKIT_METRICS_PORT={metrics_port} is not a free TCP port beside "
                              f"SAGEMAKER_BIND_TO_PORT={port}; expected e.g. 9090, or 0 for no metrics")
        access_log = (environ.get("TOOLKIT_ACCESS_LOG") or "").strip()
        return cls(
            base_dir=Path(base_dir or environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR),
            environ=MappingProxyType(dict(environ)),
            port=port,
            host=(environ.get("TOOLKIT_BIND_HOST") or "0.0.0.0").strip(),
            safe_port_range=_port_range(environ),
            workers=_int_setting(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", cpu_count(), minimum=1),
            threads=_int_setting(environ, "TOOLKIT_SERVER_THREADS", 8, minimum=1),
            timeout=timeout,
            max_payload_mb=_int_setting(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
            default_accept=(environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json").strip(),
            program=str(check_entry_point((environ.get("SAGEMAKER_PROGRAM") or "inference.py").strip(),
                                          "SAGEMAKER_PROGRAM")),
            submit_dir=(environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip() or None,
            max_concurrent_transforms=_int_setting(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 1, minimum=1),
            batch_strategy=strategy,
            preload_model=flag("TOOLKIT_PRELOAD_MODEL"),
            log_ping=flag("TOOLKIT_LOG_PING"),
            log_level=log_level_from(
                environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL") or environ.get("TOOLKIT_LOG_LEVEL")
            ),
            multi_model=flag("SAGEMAKER_MULTI_MODEL"),
            stop_seconds=stop_seconds,
            max_models=_int_setting(environ, "TOOLKIT_MAX_MODELS", 0),
            memory_headroom_mb=_int_setting(environ, "TOOLKIT_MEMORY_HEADROOM_MB", 512),
            idle_seconds=float(settings.number(environ, "TOOLKIT_IDLE_SECONDS", 120.0, minimum=0)),
            header_seconds=float(settings.number(environ, "TOOLKIT_HEADER_SECONDS", 20.0, minimum=0)),
            body_seconds=float(settings.number(environ, "TOOLKIT_BODY_SECONDS", 60.0, minimum=0)),
            probe_model_loads=_true(environ.get("TOOLKIT_PROBE_MODEL_LOADS") or "true"),
            max_batch_size=_int_setting(environ, "TOOLKIT_MAX_BATCH_SIZE", 1, minimum=1),
            max_batch_wait_ms=float(settings.number(environ, "TOOLKIT_MAX_BATCH_WAIT_MS", 5.0, minimum=0)),
            metrics_port=metrics_port,
            access_log=_true(access_log) if access_log else cls.access_log,
            max_requests=_int_setting(environ, "TOOLKIT_MAX_REQUESTS", 0),
            max_requests_jitter=_int_setting(environ, "TOOLKIT_MAX_REQUESTS_JITTER", 0),
            max_rss_mb=_int_setting(environ, "TOOLKIT_MAX_RSS_MB", 0),
            gil_switch_ms=float(settings.number(environ, "TOOLKIT_GIL_SWITCH_MS", 0.0, minimum=0)),
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
