"""Fixtures for the tests that build and run the reference images with a real container engine.

Settings (environment variables of the test run, not of the toolkit):

- TOOLKIT_TEST_ENGINE: ``podman`` or ``docker`` (default: the first that answers ``info``);
- TOOLKIT_TEST_STRICT=1: fail instead of skipping when no engine works, as for every other skip
  (CI sets it; see conftest.py at the repository's root);
- TOOLKIT_TEST_CPU_BASE / TOOLKIT_TEST_GPU_BASE: base images (default: the Dockerfiles' own);
  when one cannot be pulled, a Debian stand-in is made with debootstrap (see engines.py).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from .engines import (
    MB,
    REPO,
    Built,
    Containers,
    Engine,
    EngineError,
    build_reference_image,
    dockerfile_default_base,
    find_engine,
    first_party_plugins,
    resolve_base,
)

CPU_DOCKERFILE = REPO / "images" / "cpu" / "Dockerfile"
GPU_DOCKERFILE = REPO / "images" / "gpu" / "Dockerfile"
SESSION = uuid.uuid4().hex[:8]
SIZES: dict[str, str] = {}  # printed at the end of the run


def _unusable(reason: str) -> None:
    pytest.skip(reason)  # a failure under TOOLKIT_TEST_STRICT=1 (conftest.py at the repository's root)


def _dangling(engine: Engine) -> set[str]:
    proc = engine("images", "-q", "--no-trunc", "--filter", "dangling=true", check=False)
    return set(proc.stdout.split())


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    found, why = find_engine(os.environ.get("TOOLKIT_TEST_ENGINE") or None)
    if found is None:
        _unusable(f"no usable container engine: {why}")
    before = _dangling(found)
    yield found
    # The build stages this session left untagged (without -f: an image still in use stays).
    for image in _dangling(found) - before:
        found("rmi", image, check=False)


def _build(engine: Engine, tmp_path_factory: pytest.TempPathFactory, kind: str, dockerfile: Path,
           with_python: bool, plugins: tuple[str, ...] = ()) -> Built:
    configured = os.environ.get(f"TOOLKIT_TEST_{kind.upper()}_BASE") or dockerfile_default_base(dockerfile)
    try:
        base, standin = resolve_base(engine, configured, with_python)
        built = build_reference_image(engine, dockerfile, f"localhost/toolkit-test-{kind}:{SESSION}", base,
                                      standin, tmp_path_factory.mktemp(f"image-{kind}"), plugins)
    except EngineError as exc:
        if "debootstrap needs root" in str(exc):
            _unusable(str(exc))
        raise
    SIZES[kind] = (f"{built.tag}: {engine.size(built.tag) / MB:.0f} MB on {base}"
                   f"{' (stand-in for ' + configured + ')' if standin else ''}, "
                   f"base {engine.size(base) / MB:.0f} MB, built in {built.seconds:.0f} s")
    return built


@pytest.fixture(scope="session")
def cpu_image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """images/cpu/Dockerfile built once per session, PLUGINS empty (the default)."""
    built = _build(engine, tmp_path_factory, "cpu", CPU_DOCKERFILE, with_python=True)
    yield built
    engine("rmi", "-f", built.tag, check=False)


@pytest.fixture(scope="session")
def gpu_image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """images/gpu/Dockerfile on a base without Python (the CUDA base cannot be pulled here, so
    Debian stands in: every step is checked but the CUDA libraries themselves), with one
    first-party plugin chosen through PLUGINS when plugins/ has any."""
    plugins = first_party_plugins()
    chosen = ("toolkit-torchrun",) if "toolkit-torchrun" in plugins else tuple(plugins[:1])
    built = _build(engine, tmp_path_factory, "gpu", GPU_DOCKERFILE, with_python=False, plugins=chosen)
    yield built
    engine("rmi", "-f", built.tag, check=False)


@pytest.fixture
def containers(engine: Engine) -> Iterator[Containers]:
    box = Containers(engine)
    yield box
    box.cleanup()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SIZES:
        terminalreporter.section("reference images")
        for line in SIZES.values():
            terminalreporter.write_line(line)
