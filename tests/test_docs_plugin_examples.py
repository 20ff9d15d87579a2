"""The plugin examples of docs/hooks.md and docs/distributed.md are whole projects that install as
the docs show: every ``<!-- file: PATH -->`` block is written out as it stands on the page, then
``pip install ./<folder>`` (real pip, build isolation and all) into a throwaway venv, ``toolkit
plugins`` there lists the plugin, and the example's own tests (docs/hooks.md, "Testing your plugin":
toolkit.testing against the installed plugin) pass there. A misspelled plugin name in the controls
is a warning."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import clean_environ, run_cli, scratch_venv

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"<!-- file: (\S+)[^>]*-->\s*```\w*\n(.*?)```", re.S)


def projects(page: str) -> dict[str, dict[str, str]]:
    """folder -> {file name: text} from the page's file blocks."""
    found: dict[str, dict[str, str]] = {}
    for path, text in BLOCK.findall((DOCS / page).read_text()):
        folder, _, name = path.partition("/")
        found.setdefault(folder, {})[name] = text
    return found


@pytest.mark.parametrize(("page", "folder", "plugin"), [
    ("hooks.md", "toolkit-myplugin", "myplugin"),
    ("distributed.md", "toolkit-accelerate", "accelerate"),
])
def test_example_installs_as_shown(tmp_path: Path, page: str, folder: str, plugin: str) -> None:
    files = projects(page)[folder]
    assert {"pyproject.toml", "setup.cfg"} <= set(files), f"{page}: {folder} is not a whole project"
    assert f"pip install ./{folder}" in (DOCS / page).read_text()
    for name, text in files.items():
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(text)
    python = scratch_venv(tmp_path / "venv")
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"./{folder}"], cwd=str(tmp_path),
                          env=clean_environ(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([str(python), "-c", "from toolkit.cli import toolkit_main; toolkit_main()", "plugins",
                           "--json"], env=clean_environ(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)}
    assert listed[plugin]["source"] == f"entry point ({folder} 0.1.0)"
    tests = sorted(name for name in files if name.startswith("test_"))
    assert tests or page != "hooks.md", "hooks.md: the example plugin has lost its tests"
    if tests:
        proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=str(tmp_path / folder), env=clean_environ(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        count = sum(files[name].count("\ndef test_") for name in tests)
        assert f"{count} passed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("variable", ["TOOLKIT_PLUGINS", "TOOLKIT_DISABLE_PLUGINS"])
def test_misspelled_plugin_name_is_a_warning(variable: str) -> None:
    proc = run_cli("toolkit", "plugins", env=clean_environ(**{variable: "pipp"}))
    assert proc.returncode == 0
    assert f"{variable} names 'pipp', which is no plugin here; the plugins are: " in proc.stderr
    assert "pip, python" in proc.stderr
