"""``train`` and ``serve`` take no arguments (SageMaker passes none): anything else is a mistake
said in one line with exit 2, before any job starts; their own name (an image whose ENTRYPOINT is
``train`` run as ``docker run IMAGE train``) still works."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Job, clean_environ, run_cli


@pytest.mark.parametrize(("argv", "bad", "names"), [
    (["serve", "--port", "9000"], "--port", "SAGEMAKER_BIND_TO_PORT"),
    (["train", "--bogus"], "--bogus", "SAGEMAKER_BASE_DIR"),
    (["train", "train", "--epochs", "3"], "--epochs", "hyperparameters"),
])
def test_unknown_argument_is_one_line_and_exit_2(job: Job, argv: list[str], bad: str, names: str) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).channels().resources()
    job.script("train.py", "open('ran', 'w').write('yes')\n")
    proc = run_cli(*argv, env=clean_environ(SAGEMAKER_BASE_DIR=str(job.base)))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{argv[0]}: unexpected argument {bad!r}"), lines
    assert names in lines[0]
    assert not (job.code / "ran").exists() and not job.failure.exists()


def test_own_name_as_argument_still_runs(job: Job, tmp_path: Path) -> None:
    """``ENTRYPOINT ["train"]`` + ``docker run IMAGE train`` gives train the argument ``train``."""
    job.hyperparameters({"sagemaker_program": "train.py"}).channels().resources()
    job.script("train.py", "print('ran')\n")
    proc = run_cli("train", "train", env=clean_environ(SAGEMAKER_BASE_DIR=str(job.base)))
    assert proc.returncode == 0, proc.stderr
    assert job.success.exists()
