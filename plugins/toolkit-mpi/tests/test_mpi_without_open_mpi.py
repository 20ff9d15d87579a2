"""MPI selected where Open MPI is not installed: the failure file's first line names the cause and
the fix, not ``FileNotFoundError: ... 'mpirun'``."""

from __future__ import annotations

from pathlib import Path


def test_missing_mpirun_is_the_first_line(host_job, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"  # a PATH with no mpirun on it, as on an image without Open MPI
    empty.mkdir()
    host_job.script("train.py", "print('must not run')\n")
    host_job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_mpi_enabled": True})
    done = host_job.run(PATH=str(empty), TOOLKIT_SSH_DIR=str(tmp_path / "ssh"),
                        TOOLKIT_MPI_STATE_DIR=str(tmp_path / "state"))
    assert done.returncode == 1, done.stderr
    first = host_job.failure.read_text().splitlines()[0]
    assert first.startswith("mpi: Open MPI is not installed: no 'mpirun' on PATH; install it"), first
    assert "FileNotFoundError" not in host_job.failure.read_text()
