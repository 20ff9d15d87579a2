"""In-process, /opt/ml/checkpoints is <host folder>/checkpoints: the job is told where with
TOOLKIT_CHECKPOINT_DIR, and what it writes there reaches CheckpointConfig.S3Uri."""

from __future__ import annotations

from pathlib import Path

from localjobs import toolkit, write_script

SCRIPT = """import os
where = os.environ["TOOLKIT_CHECKPOINT_DIR"]
print("CHECKPOINTS", where)
open(os.path.join(where, "step-1.ckpt"), "w").write("state")
"""


def test_job_is_told_where_its_checkpoint_folder_is(tmp_path: Path) -> None:
    write_script(tmp_path / "src", SCRIPT)
    work, saved = tmp_path / "work", tmp_path / "saved"
    proc = toolkit("local", "train", "--job-name", "ck", "--source-dir", str(tmp_path / "src"), "--entry-point",
                   "train.py", "--checkpoint-s3-uri", str(saved), "--workdir", str(work))
    assert proc.returncode == 0, proc.stderr
    assert f"CHECKPOINTS {work / 'ck' / 'algo-1' / 'checkpoints'}" in proc.stdout + proc.stderr
    assert (saved / "step-1.ckpt").read_text() == "state"
