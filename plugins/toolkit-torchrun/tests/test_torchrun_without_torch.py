"""torchrun selected where PyTorch is not installed: the failure file's first line names the
cause and the fix, not "algo-1 failed with exit code 1"."""

from __future__ import annotations

from pathlib import Path


def test_missing_torch_is_the_first_line(host_job, tmp_path: Path) -> None:
    hide = tmp_path / "hide-torch"
    hide.mkdir()
    # torch may be installed here: make it not importable, as on an image without it
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    host_job.script("train.py", "print('must not run')\n")
    host_job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_torch_distributed_enabled": True})
    done = host_job.run(PYTHONPATH=str(hide))
    assert done.returncode == 1, done.stderr
    first = host_job.failure.read_text().splitlines()[0]
    assert first.startswith("torchrun: PyTorch is not installed (No module named 'torch'"), first
    assert "pip install torch" in first
    assert "must not run" not in done.stdout
