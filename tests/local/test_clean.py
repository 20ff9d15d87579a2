"""``toolkit local clean`` removes what the emulator made (by name, all, by age) and nothing else;
the job summary says how much a job folder holds; ``toolkit example`` removes its temporary folder."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from helpers import run_cli
from localjobs import toolkit, write_script


def run_job(tmp_path: Path, work: Path, name: str) -> str:
    write_script(tmp_path / "src", "import os\nopen(os.environ['SM_MODEL_DIR'] + '/m', 'wb').write(b'x' * 3000)\n")
    proc = toolkit("local", "train", "--job-name", name, "--source-dir", str(tmp_path / "src"), "--entry-point",
                   "train.py", "--workdir", str(work))
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_clean_by_name_age_and_all(tmp_path: Path) -> None:
    work = tmp_path / "work"
    stderr = run_job(tmp_path, work, "job-a")
    line = next(ln for ln in stderr.splitlines() if "job folder:" in ln)
    assert re.search(r"job folder: .*job-a \(\d+\.\d KB; `toolkit local clean --workdir .* job-a` removes it\)", line)
    run_job(tmp_path, work, "job-b")
    run_job(tmp_path, work, "job-c")
    (work / "notes.txt").write_text("mine")  # not the emulator's: never removed
    old = time.time() - 3 * 86400
    for path in (work / "job-b", work / "job-b.json"):
        os.utime(path, (old, old))

    proc = toolkit("local", "clean", "--workdir", str(work), "job-a")
    assert proc.returncode == 0, proc.stderr
    assert "removed job-a (" in proc.stderr and "freed" in proc.stderr
    assert not (work / "job-a").exists() and not (work / "job-a.json").exists()

    proc = toolkit("local", "clean", "--workdir", str(work), "--older-than", "2d")
    assert proc.returncode == 0, proc.stderr
    assert not (work / "job-b").exists() and (work / "job-c").exists()

    proc = toolkit("local", "clean", "--workdir", str(work), "--all", "--dry-run")
    assert "would remove job-c" in proc.stderr and (work / "job-c").exists()
    assert toolkit("local", "clean", "--workdir", str(work), "--all").returncode == 0
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]


def test_clean_says_what_is_wrong(tmp_path: Path) -> None:
    work = tmp_path / "work"
    run_job(tmp_path, work, "kept")
    proc = toolkit("local", "clean", "--workdir", str(work))
    assert proc.returncode == 2 and "say what to remove: job names, --all, or --older-than AGE" in proc.stderr
    proc = toolkit("local", "clean", "--workdir", str(work), "kep")
    assert proc.returncode == 2 and "no job named 'kep' in this work folder (jobs here: kept)" in proc.stderr
    proc = toolkit("local", "clean", "--workdir", str(work), "--older-than", "soon")
    assert proc.returncode == 2 and "expected a number and a unit, e.g. 30m" in proc.stderr
    assert (work / "kept").is_dir()


def test_example_removes_its_folder_unless_kept(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path), "PATH": os.environ["PATH"]}
    proc = run_cli("toolkit", "example", env=env)
    assert proc.returncode == 0, proc.stderr
    assert '"epochs": 20' in proc.stdout and "removed " in proc.stdout
    assert not list(tmp_path.glob("toolkit-example-*"))
    proc = run_cli("toolkit", "example", "--keep", env=env)
    assert proc.returncode == 0
    assert len(list(tmp_path.glob("toolkit-example-*/opt/ml/model/model.json"))) == 1
