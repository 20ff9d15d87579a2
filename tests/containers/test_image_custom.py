"""What docs/images.md tells users to do on top: `FROM` the image with their code and a plugin,
or paste the toolkit's lines into their own Dockerfile. Both built and run for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .engines import REPO, Built, Engine

pytestmark = pytest.mark.container

REPORT = """
import json, os
with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as fh:
    json.dump({"hello": os.environ.get("HELLO"), "cwd": os.getcwd(), "lr": os.environ.get("SM_HP_LR")}, fh)
"""

PLUGIN_SETUP = """\
[metadata]
name = toolkit-hello
version = 0.1

[options]
py_modules = toolkit_hello

[options.entry_points]
toolkit.plugins =
    hello = toolkit_hello
"""
PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""
PLUGIN_MODULE = """\
from toolkit import hookimpl

@hookimpl
def toolkit_environment(env):
    return {"HELLO": "from the hello plugin"}
"""


def pasted_lines() -> list[str]:
    """The lines docs/images.md offers for pasting into one's own Dockerfile."""
    text = (REPO / "docs" / "images.md").read_text()
    block = text.split("Or paste these lines", 1)[1].split("\n\n", 2)[1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    assert lines and re.match(r"^(RUN|ENV|CMD) ", lines[0]), block
    return lines


def wheel_it(project: Path, dest: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(project)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def mounted_job(root: Path) -> dict[Path, str]:
    """A job without code: /opt/ml/{input,model,output} mounted one by one, as SageMaker does,
    so that /opt/ml/code comes from the image."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"lr": "0.25"}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for folder in ("model", "output"):
        (root / folder).mkdir()
    return {root / "input": "/opt/ml/input", root / "model": "/opt/ml/model", root / "output": "/opt/ml/output"}


def test_from_the_image_with_your_code_and_a_plugin(engine: Engine, cpu_image: Built, containers,
                                                    tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "setup.cfg").write_text(PLUGIN_SETUP)
    (plugin / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (plugin / "toolkit_hello.py").write_text(PLUGIN_MODULE)
    context = tmp_path / "context"
    context.mkdir()
    wheel_it(plugin, context)
    wheel = next(context.glob("toolkit_hello-*.whl")).name
    (context / "train.py").write_text(REPORT)
    (context / "Dockerfile").write_text(
        f"FROM {cpu_image.tag}\n"
        f"COPY {wheel} /tmp/\n"
        f"RUN pip install --no-cache-dir --no-index /tmp/{wheel} && rm /tmp/{wheel}\n"
        "COPY train.py /opt/ml/code/train.py\n"
        "ENV SAGEMAKER_PROGRAM=train.py\n")
    tag = f"{cpu_image.tag}-yours"
    engine.build(context, context / "Dockerfile", tag, {})
    try:
        proc = containers.run(tag, "train", volumes=mounted_job(tmp_path / "job"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((tmp_path / "job" / "model" / "report.json").read_text())
        assert report == {"hello": "from the hello plugin", "cwd": "/opt/ml/code", "lr": "0.25"}
        assert (tmp_path / "job" / "output" / "success").exists()
    finally:
        engine("rmi", "-f", tag, check=False)


def test_the_lines_to_paste_into_your_own_dockerfile(engine: Engine, cpu_image: Built, containers,
                                                      tmp_path: Path) -> None:
    """On the python base the CPU image was built on; pip finds the toolkit through PIP_FIND_LINKS
    (a wheel of this repository), as the page says."""
    context = tmp_path / "context"
    shutil.copytree(cpu_image.context / "wheels", context / "wheels")
    wheel_it(REPO, context / "wheels")
    (context / "train.py").write_text(REPORT)
    lines = pasted_lines()
    (context / "Dockerfile").write_text("\n".join([
        f"FROM {cpu_image.base}",
        "COPY wheels /wheels",
        "ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels",
        *lines,
        "COPY train.py /opt/ml/code/train.py",
        "ENV SAGEMAKER_PROGRAM=train.py",
    ]) + "\n")
    tag = f"{cpu_image.tag}-pasted"
    engine.build(context, context / "Dockerfile", tag, {})
    try:
        assert engine.inspect(tag)["Config"]["Cmd"] == ["serve"]
        proc = containers.run(tag, "train", volumes=mounted_job(tmp_path / "job"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((tmp_path / "job" / "model" / "report.json").read_text())
        assert report == {"hello": None, "cwd": "/opt/ml/code", "lr": "0.25"}
    finally:
        engine("rmi", "-f", tag, check=False)
