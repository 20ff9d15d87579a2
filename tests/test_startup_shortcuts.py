"""What was hand-written for start-up speed gives what it replaces: the entry-point scan
(toolkit/manager.py) gives importlib.metadata's entry points, the direct log writer (toolkit/log.py)
gives logging's lines, environment.which gives shutil.which's answer. tests/test_imports.py pins
why they exist: a whole `train` run imports neither logging nor importlib.metadata."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import clean_environ

from toolkit.environment import which


def dist_info(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


COMPARE = """\
import json, sys
from importlib.metadata import entry_points
from toolkit import manager
first = {}
for ep in entry_points(group="toolkit.plugins"):
    if ep.name not in first:
        first[ep.name] = (ep.value, repr(ep.load()))
ours = {name: (value, repr(manager._load(value))) for name, value, _ in manager._entry_points()}
print(json.dumps([ours, first]))
"""


def test_the_entry_point_scan_finds_what_importlib_metadata_finds(tmp_path: Path) -> None:
    plain, zipped = tmp_path / "site", tmp_path / "plugins.zip"
    (plain / "pa.py").parent.mkdir()
    (plain / "pa.py").write_text("class Hooks:\n    class Inner:\n        pass\n")
    (plain / "pb.py").write_text("")
    dist_info(plain, "pa", "[console_scripts]\npa = pa:Hooks\n\n[toolkit.plugins]\n# a comment\n"
                           "a-inner = pa:Hooks.Inner [extra1, extra2]\nplain = pa\n")
    dist_info(plain, "pb", "[toolkit.plugins]\nb = pb\n[other.group]\nnot-ours = pb\n")
    dist_info(plain, "pc", "[toolkit.plugins]\nplain = pb\n")  # a later plugin with a name taken: the first wins
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("pz.py", "value = 1\n")
        zf.writestr("pz-2.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pz\nVersion: 2.0\n")
        zf.writestr("pz-2.0.dist-info/entry_points.txt", "[toolkit.plugins]\nzipped = pz:value\n")
    env = clean_environ(PYTHONPATH=os.pathsep.join([str(plain), str(zipped)]))
    out = subprocess.run([sys.executable, "-c", COMPARE], env=env, capture_output=True, text=True, check=True)
    ours, reference = json.loads(out.stdout)
    assert ours == reference
    assert {"a-inner", "plain", "b", "zipped", "mpi", "torchrun"} <= set(ours)  # the venv's plugins too
    assert ours["plain"][0] == "pa" and ours["zipped"][1] == "1"


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
def test_the_direct_log_writer_writes_logging_s_lines(level: str) -> None:
    # the same calls, once written directly (logging never imported), once through logging
    calls = ("from toolkit import log as tlog\nimport sys\n"
             "tlog.setup(tlog.LEVELS[sys.argv[1]], defer=sys.argv[2] == 'direct')\n"
             "assert ('logging' in sys.modules) == (sys.argv[2] == 'logging')\n"
             "tlog.log.debug('debug %d', 1)\ntlog.log.info('info %s and %r', 'x', 'y')\n"
             "tlog.log.warning('mapping %(a)s', {'a': 'b'})\ntlog.log.error('no args %s')\n"
             "tlog.log.info('fetch https://user:hunter2@host/x')\ntlog.log.log(25, 'custom level')\n")
    lines = {}
    for how in ("direct", "logging"):
        out = subprocess.run([sys.executable, "-c", calls, level, how], capture_output=True, text=True, check=True)
        stamps = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", out.stderr, re.M)
        assert len(stamps) == len(out.stderr.splitlines()), out.stderr
        lines[how] = [line[len(stamp):] for line, stamp in zip(out.stderr.splitlines(), stamps)]
    assert lines["direct"] == lines["logging"]
    assert "toolkit ERROR no args %s" in lines["direct"] and "hunter2" not in str(lines["direct"])


def test_which_answers_as_shutil_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_a, bin_b = tmp_path / "a", tmp_path / "b"
    for folder in (bin_a, bin_b):
        folder.mkdir()
    for path, mode in ((bin_a / "tool", 0o644), (bin_b / "tool", 0o755), (bin_b / "only-b", 0o755),
                       (tmp_path / "here", 0o755)):
        path.write_text("#!/bin/sh\n")
        path.chmod(mode)
    (bin_a / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    paths = [f"{bin_a}:{bin_b}", str(bin_a), "", ":", f"{bin_a}::{bin_b}", None]
    names = ["tool", "only-b", "folder", "here", "missing", str(bin_b / "tool"), str(bin_a / "tool"), "./here"]
    monkeypatch.setenv("PATH", f"{bin_b}")
    for path in paths:
        for name in names:
            assert which(name, path) == shutil.which(name, path=path), (name, path)
