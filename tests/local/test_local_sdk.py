"""A CreateTrainingJob request made by the real SageMaker Python SDK v2, replayed by
``toolkit local train --in-process`` against moto's S3 server.

The request in data/sdk_v2_request.json was recorded by sdk_v2_request.py (sagemaker 2.257.7,
an Estimator with entry_point and source_dir, against moto's SageMaker and S3 endpoints), and is
replayed as it is. The same request is also recorded afresh against this session's moto server by
the SDK installed here (a test extra; TOOLKIT_TEST_SDK_V2_PYTHON names another Python that has it),
and replayed: that case skips where the SDK is missing, so fails under TOOLKIT_TEST_STRICT=1 (CI).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Optional

import pytest
from helpers import clean_environ
from localjobs import describe, s3_bytes, s3_keys, tar_members, toolkit

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "data" / "sdk_v2_request.json"
BUCKET = "sdk-v2-bucket"
SCRIPT = """
import json, os, sys
cfg = os.environ["SM_INPUT_CONFIG_DIR"]
seen = {"argv": sys.argv[1:], "color": os.environ.get("COLOR"), "module": os.environ.get("SM_MODULE_DIR"),
        "channel": open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "rows.csv")).read(),
        "checkpoint": json.load(open(os.path.join(cfg, "checkpointconfig.json")))["S3Uri"]}
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def sdk_python() -> Optional[str]:
    """A Python with the SageMaker SDK v2: TOOLKIT_TEST_SDK_V2_PYTHON, else this one if it has it."""
    return os.environ.get("TOOLKIT_TEST_SDK_V2_PYTHON") or (
        sys.executable if importlib.util.find_spec("sagemaker") else None)


def request_json(tmp_path: Path, s3_env: dict, fresh: bool) -> dict[str, Any]:
    if not fresh:
        return json.loads(RECORDED.read_text())
    python = sdk_python()
    if python is None:
        pytest.skip("the SageMaker Python SDK v2 is not installed (pip install -e '.[test]')")
    src = tmp_path / "sdk-src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    out = tmp_path / "request.json"
    subprocess.run([python, str(HERE / "sdk_v2_request.py"), str(src), str(out)], check=True, timeout=300,
                   env=clean_environ(**s3_env, SAGEMAKER_SUPPRESS_V2_WARNING="1"))
    return json.loads(out.read_text())


def sourcedir(script: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(script.encode())
        tar.addfile(info, io.BytesIO(script.encode()))
    return buf.getvalue()


@pytest.mark.parametrize("fresh", [False, True], ids=["recorded", "recorded-now"])
def test_sdk_v2_request_replayed(s3: Any, s3_env: dict, tmp_path: Path, fresh: bool) -> None:
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    request = request_json(tmp_path, s3_env, fresh)
    job = request["TrainingJobName"]
    submit = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    assert submit == f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz"
    if not fresh:  # recorded: put the SDK's upload back
        s3.put_object(Bucket=BUCKET, Key=f"{job}/source/sourcedir.tar.gz", Body=sourcedir(SCRIPT))
    s3.put_object(Bucket=BUCKET, Key="data/train/rows.csv", Body=b"1,2\n")
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--request", str(path), "--in-process", "--workdir", str(work), env=s3_env)
    assert proc.returncode == 0, proc.stderr

    prefix = f"output/{job}/output/"
    assert {k for k in s3_keys(s3, BUCKET) if k.startswith(prefix)} == {prefix + "model.tar.gz",
                                                                        prefix + "output.tar.gz"}
    seen = json.loads(tar_members(s3_bytes(s3, BUCKET, prefix + "model.tar.gz"))["seen.json"])
    # argv as sagemaker-training builds it from the SDK's JSON-encoded hyperparameters
    assert seen["argv"] == ["--epochs", "3", "--layers", "[4, 2]", "--learning-rate", "0.25"]
    assert seen["color"] == "green" and seen["channel"] == "1,2\n"
    assert seen["module"] == submit
    assert seen["checkpoint"] == f"s3://{BUCKET}/checkpoints"
    answer = describe(work, job)
    assert answer["TrainingJobStatus"] == "Completed"
    assert answer["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{BUCKET}/{prefix}model.tar.gz"
