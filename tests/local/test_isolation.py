"""In-process jobs install their requirements into an environment of their own, layered over the
one that runs ``toolkit``: the user's venv never changes, and the environment is made once per
distinct requirements and reused. Real pip (or uv, where installed) and a real wheel."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import make_wheel
from localjobs import invoke, local_serve, toolkit, write_script

SCRIPT = """import os, sys, demo_layered
import toolkit  # the toolkit (and every package of the parent venv) is still there
print("EXE", sys.executable)
print("VALUE", demo_layered.VALUE)
"""


def user_venv_has(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def environment_line(stderr: str) -> str:
    return next(ln for ln in stderr.splitlines() if ln.strip().startswith("environment:"))


def wheel_in(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return make_wheel(folder, name, source)


def test_train_installs_into_its_own_environment_and_reuses_it(tmp_path: Path) -> None:
    wheel = wheel_in(tmp_path / "wheels", "demo_layered", "VALUE = 'layered'\n")
    src = tmp_path / "src"
    write_script(src, SCRIPT)
    (src / "requirements.txt").write_text(f"{wheel}\n")
    work = tmp_path / "work"
    common = ["--source-dir", str(src), "--entry-point", "train.py", "--workdir", str(work)]

    first = toolkit("local", "train", "--job-name", "iso-1", *common, "--instance-count", "2", timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("VALUE layered") == 2 or first.stderr.count("VALUE layered") == 2
    exe = re.search(r"EXE (\S+)", first.stdout + first.stderr).group(1)  # type: ignore[union-attr]
    assert exe.startswith(str(work / ".venvs")), exe
    assert "(made in" in environment_line(first.stderr)
    assert not user_venv_has("demo_layered")  # the user's venv is unchanged

    second = toolkit("local", "train", "--job-name", "iso-2", *common, timeout=300)
    assert second.returncode == 0, second.stderr
    assert environment_line(second.stderr) == environment_line(first.stderr).split(" (")[0] + " (reused)"

    (src / "requirements.txt").write_text(f"{wheel}\n# another set of requirements\n")
    third = toolkit("local", "train", "--job-name", "iso-3", *common, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "(made in" in environment_line(third.stderr)
    assert len(list((work / ".venvs").glob("*/.toolkit-ready"))) == 2

    # the environments are the emulator's: `toolkit local clean --all` takes them too
    assert toolkit("local", "clean", "--all", "--workdir", str(work)).returncode == 0
    assert not (work / ".venvs").exists()


def test_serve_installs_into_its_own_environment(tmp_path: Path) -> None:
    wheel = wheel_in(tmp_path / "wheels", "demo_served", "VALUE = 'served'\n")
    model = tmp_path / "model"
    write_script(model / "code", "import demo_served\n\ndef model_fn(model_dir):\n    return demo_served.VALUE\n\n"
                 "def predict_fn(data, model):\n    return {'value': model}\n", "inference.py")
    (model / "code" / "requirements.txt").write_text(f"{wheel}\n")
    with local_serve(str(model), "--workdir", str(tmp_path / "work")) as port:
        assert invoke(port, b"[1]") == (200, b'{"value": "served"}')
        assert not user_venv_has("demo_served")
