"""Start-up stays light: the toolkit and `train --help` import no heavy module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import Job

HEAVY = ("boto3", "botocore", "flask", "waitress", "numpy", "werkzeug")


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_toolkit_pulls_in_no_heavy_module() -> None:
    loaded = imported_after("import toolkit")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_train_help_pulls_in_no_heavy_module() -> None:
    code = (
        "import sys\nsys.argv = ['train', '--help']\nfrom toolkit import scripts\n"
        "try:\n    scripts.train_main()\nexcept SystemExit:\n    pass"
    )
    loaded = imported_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_train_does_not_load_click() -> None:
    # SageMaker starts `train` for every job: it needs no argument parser
    code = "from toolkit import scripts, training"
    assert "click" not in imported_after(code)


def test_building_the_plugin_manager_pulls_in_no_heavy_module() -> None:
    loaded = imported_after("from toolkit.manager import get_plugin_manager\nget_plugin_manager({})")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_train_and_process_put_the_stand_ins_on_the_path_without_importing_them() -> None:
    # sagemaker_training & co. cost nothing unless the user's code imports them: train and process only
    # add a path string to their child's PYTHONPATH
    code = ("import sys\nsys.argv = ['train', '--help']\nfrom toolkit import scripts\n"
            "try:\n    scripts.train_main()\nexcept SystemExit:\n    pass\n"
            "from pathlib import Path\nfrom toolkit.manager import get_plugin_manager\n"
            "from toolkit.environment import ProcessingEnv, TrainingEnv\n"
            "from toolkit.processing import child_environment\n"
            "from toolkit.types import Command\nenviron = {'SAGEMAKER_BASE_DIR': '/nonexistent'}\n"
            "pm = get_plugin_manager({}, training=True)\n"
            "train_env = {}\nfor part in pm.hook.toolkit_environment(env=TrainingEnv.from_environ(environ)):\n"
            "    train_env.update(part)\n"
            "process_env = child_environment(ProcessingEnv.from_environ(environ), Command(['x']), Path('/code'))\n"
            "assert train_env['PYTHONPATH'].endswith('importpath'), train_env['PYTHONPATH']\n"
            "assert process_env['PYTHONPATH'].endswith('importpath'), process_env['PYTHONPATH']")
    loaded = imported_after(code)
    assert not {m for m in loaded if m.startswith(("sagemaker", "toolkit.compat.sagemaker", "_toolkit_stand_in"))}


def test_a_whole_train_run_imports_neither_logging_nor_importlib_metadata(tmp_path: Path) -> None:
    # why toolkit/log.py writes lines itself and toolkit/manager.py reads entry_points.txt itself
    # (tests/test_startup_shortcuts.py checks both against what they replace)
    job = Job(tmp_path).hyperparameters({"sagemaker_program": "train.py"}).resources().channels("train")
    job.script("train.py", "print('trained')\n")
    modules = tmp_path / "modules.txt"
    probe = ("import atexit, sys\n"
             f"atexit.register(lambda: open({str(modules)!r}, 'w').write(' '.join(sys.modules)))\n"
             "from toolkit.scripts import train_main\ntrain_main()")
    out = subprocess.run([sys.executable, "-c", probe], env=job.environ(), capture_output=True, text=True)
    assert out.returncode == 0 and "trained" in out.stdout, out.stderr
    loaded = set(modules.read_text().split())
    assert "toolkit.training" in loaded
    assert not loaded & {"logging", "importlib.metadata", *HEAVY}, loaded & {"logging", "importlib.metadata"}
    # serve's and process's environments are frozen dataclasses whose methods are generated and
    # compiled when the class is built (ServingEnv: 33 fields): train builds neither
    assert not loaded & {"toolkit.servingenv", "toolkit.processingenv"}, loaded


def test_the_other_environments_are_still_found_in_toolkit_environment() -> None:
    # moved out of environment.py for train's start-up, not out of its API
    code = ("import toolkit\nfrom toolkit.environment import ProcessingEnv, ServingEnv\n"
            "from toolkit import environment\n"
            "assert toolkit.ServingEnv is ServingEnv and toolkit.ProcessingEnv is ProcessingEnv\n"
            "assert ServingEnv.from_environ({}).port == 8080\n"
            "assert not hasattr(environment, 'NoSuchEnv')")
    assert "toolkit.servingenv" in imported_after(code)


def test_train_starts_with_the_cyclic_collector_off(tmp_path: Path) -> None:
    # the modules train imports make no garbage: no collection may walk them while they load
    job = Job(tmp_path).hyperparameters({"sagemaker_program": "train.py"}).resources().channels("train")
    job.script("train.py", "print('trained')\n")
    seen = tmp_path / "seen.txt"
    probe = ("import builtins, gc, sys\n"
             "real = builtins.__import__\n"
             "def watch(name, *args, **kwargs):\n"
             "    if name in FIRST and name not in sys.modules and gc.isenabled():\n"
             f"        open({str(seen)!r}, 'a').write(name + '\\n')\n"
             "    return real(name, *args, **kwargs)\n"
             "FIRST = {'toolkit.process', 'signal', 'subprocess', 'pathlib', 'json', 'pluggy', 'toolkit.training'}\n"
             "builtins.__import__ = watch\n"
             "from toolkit.scripts import train_main\ntrain_main()")
    out = subprocess.run([sys.executable, "-c", probe], env=job.environ(), capture_output=True, text=True)
    assert out.returncode == 0 and "trained" in out.stdout, out.stderr
    assert not seen.exists(), seen.read_text()
