"""Start-up stays light: the toolkit and `train --help` import no heavy module."""

from __future__ import annotations

import subprocess
import sys

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
