"""toolkit.testing, as a plugin author uses it (docs/hooks.md, "Testing your plugin"; the example there
runs in tests/test_docs_plugin_examples.py): what it promises beyond that example."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import toolkit
from toolkit import testing
from toolkit.manager import _entry_points


def probe_plugin() -> types.ModuleType:
    module = types.ModuleType("toolkit_probe")

    @toolkit.hookimpl
    def toolkit_environment(env: toolkit.TrainingEnv) -> dict[str, str]:
        return {"PROBE": env.current_host}

    module.toolkit_environment = toolkit_environment  # type: ignore[attr-defined]
    return module


def test_plugin_manager_holds_the_plugin_and_the_builtins_but_no_other_installed_plugin(tmp_path: Path) -> None:
    installed = {name for name, _value, _origin in _entry_points()}
    if not installed:
        pytest.skip("no plugin is installed here (pip install ./plugins/toolkit-mpi)")
    pm = testing.plugin_manager(probe_plugin(), training=True)
    names = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    assert "toolkit_probe" in names and "python" in names
    assert not names & installed
    env = testing.Job(tmp_path).resources("algo-2", ("algo-1", "algo-2")).training_env()
    assert {"PROBE": "algo-2"} in pm.hook.toolkit_environment(env=env)


def running_in(folder: Path) -> list[str]:
    """The processes whose working folder is ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").readlink() == folder:
                found.append(proc.name)
        except OSError:
            continue
    return found


def test_a_serve_that_never_gets_ready_fails_with_its_log_and_is_stopped(tmp_path: Path) -> None:
    job = testing.Job(tmp_path)
    job.script("inference.py", "def model_fn(model_dir):\n    raise RuntimeError('no model here')\n",
               where=job.model / "code")
    with pytest.raises(AssertionError, match=r"(?s)never answered 200.*no model here"):
        job.serve(timeout=3, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    assert running_in(job.base) == []


def test_a_serve_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"(?s)serve exited with 2.*SAGEMAKER_MODEL_SERVER_WORKERS"):
        testing.Job(tmp_path).serve(SAGEMAKER_MODEL_SERVER_WORKERS="none")


def test_importing_it_loads_no_test_framework() -> None:
    code = "import toolkit.testing, sys; print(' '.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert not loaded & {"pytest", "_pytest", "pluggy", "flask", "boto3"}
