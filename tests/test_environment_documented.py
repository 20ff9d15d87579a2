"""docs/environment.md lists every variable the code reads and every variable `train` exports."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import Job

from toolkit.builtin.variables import processing_variables, sm_variables
from toolkit.environment import ProcessingEnv, TrainingEnv

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "environment.md").read_text()
PREFIXES = ("SAGEMAKER_", "TOOLKIT_", "SM_", "AWS_", "TRAINING_JOB_NAME", "CURRENT_HOST")
READ = re.compile(r"""(?:environ|env|settings_view\(\))\s*(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")


def documented(name: str) -> bool:
    if f"`{name}`" in DOC:
        return True
    # SM_CHANNEL_TRAIN is covered by the SM_CHANNEL_<NAME> row
    return any(name.startswith(p.split("<")[0]) for p in re.findall(r"`([A-Z_]+_<NAME>)`", DOC))


def test_every_variable_read_by_the_code_is_documented() -> None:
    names = set()
    for path in (ROOT / "toolkit").rglob("*.py"):
        names |= {n for n in READ.findall(path.read_text()) if n.startswith(PREFIXES)}
    assert "SAGEMAKER_BASE_DIR" in names  # the scan finds what it should
    missing = sorted(n for n in names if not documented(n))
    assert not missing, f"read by the code but not in docs/environment.md: {missing}"


def test_every_exported_variable_is_documented(job: Job) -> None:
    job.hyperparameters({"epochs": 3, "learning-rate": 0.1, "sagemaker_program": "train.py"})
    job.channels("train", "val-set").resources(topology=[{"x": 1}])
    env = TrainingEnv.from_environ(job.environ()).with_changes(source_dir=job.code)
    exported = sm_variables(env)
    assert {"SM_CHANNEL_VAL-SET", "SM_CHANNEL_VAL_SET", "SM_HP_LEARNING-RATE", "SM_HP_LEARNING_RATE"} <= set(exported)
    missing = sorted(n for n in exported if not documented(n))
    assert not missing, f"exported but not in docs/environment.md: {missing}"


def test_every_variable_process_exports_is_documented(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "processingjobconfig.json").write_text(
        '{"ProcessingJobName": "p", "ProcessingInputs": [{"InputName": "raw-data", "S3Input": '
        '{"LocalPath": "/opt/ml/processing/input/raw"}}], "ProcessingOutputConfig": {"Outputs": '
        '[{"OutputName": "train", "S3Output": {"LocalPath": "/opt/ml/processing/train"}}]}}')
    exported = processing_variables(ProcessingEnv.from_environ({}, str(tmp_path)))
    wanted = {"SM_PROCESSING_INPUT_RAW-DATA", "SM_PROCESSING_INPUT_RAW_DATA", "SM_PROCESSING_OUTPUT_TRAIN"}
    assert wanted <= set(exported)
    missing = sorted(n for n in exported if not documented(n))
    assert not missing, f"exported by process but not in docs/environment.md: {missing}"
