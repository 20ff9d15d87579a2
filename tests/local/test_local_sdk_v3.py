"""A CreateTrainingJob request made by the real SageMaker Python SDK v3 (``ModelTrainer`` with
``SourceCode(command=..., args=...)``), replayed by ``toolkit local train --in-process`` against
moto's S3 server.

data/sdk_v3_request.json and data/sdk_v3_sm_drivers/ (the sourcecode.json and distributed.json the
SDK uploaded for its sm_drivers channel) were recorded by sdk_v3_request.py with sagemaker 3.27.0. The
request's entrypoint is the SDK's own driver, /bin/bash running sm_drivers/sm_train.sh, which exists
only in a container; in-process, this machine's ``train`` runs the job from the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localjobs import describe, s3_bytes, tar_members, toolkit

HERE = Path(__file__).resolve().parent
REQUEST = json.loads((HERE / "data" / "sdk_v3_request.json").read_text())
DRIVERS = HERE / "data" / "sdk_v3_sm_drivers"
BUCKET = "sdk-v3-bucket"
SCRIPT = """
import json, os, sys
seen = {"argv": sys.argv[1:], "hps": json.loads(os.environ["SM_HPS"]), "color": os.environ.get("COLOR"),
        "rows": open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "rows.csv")).read(), "cwd": os.getcwd()}
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
"""


def channel_prefix(name: str) -> str:
    uri = next(c for c in REQUEST["InputDataConfig"] if c["ChannelName"] == name)["DataSource"]["S3DataSource"]["S3Uri"]
    return uri.split("/", 3)[3]


def put_sdk_uploads(s3: Any) -> None:
    """What the SDK uploaded before CreateTrainingJob: the code and its sm_drivers files."""
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"{channel_prefix('code')}/train.py", Body=SCRIPT.encode())
    for name in ("sourcecode.json", "distributed.json"):
        s3.put_object(Bucket=BUCKET, Key=f"{channel_prefix('sm_drivers')}/{name}", Body=(DRIVERS / name).read_bytes())
    s3.put_object(Bucket=BUCKET, Key="data/train/rows.csv", Body=b"1,2\n")


def test_recorded_request_runs_the_sdk_driver_entrypoint() -> None:
    algo = REQUEST["AlgorithmSpecification"]
    assert algo["ContainerEntrypoint"] == ["/bin/bash"]
    assert "/opt/ml/input/data/sm_drivers/sm_train.sh" in algo["ContainerArguments"][-1]
    assert json.loads((DRIVERS / "distributed.json").read_text()) == {}


def test_sdk_v3_request_replayed_in_process(s3: Any, s3_env: dict, tmp_path: Path) -> None:
    put_sdk_uploads(s3)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--request", str(path), "--in-process", "--workdir", str(work), env=s3_env)
    assert proc.returncode == 0, proc.stderr
    job = REQUEST["TrainingJobName"]
    answer = describe(work, job)
    assert answer["TrainingJobStatus"] == "Completed", answer.get("FailureReason")
    model = answer["ModelArtifacts"]["S3ModelArtifacts"]
    seen = json.loads(tar_members(s3_bytes(s3, BUCKET, model.split("/", 3)[3]))["seen.json"])
    # SourceCode(command="python3 train.py --from-command x", args=["--note", "two words", "--n", 7])
    assert seen["argv"] == ["--from-command", "x", "--note", "two words", "--n", "7"]
    assert seen["hps"] == {"epochs": 3, "optimizer": "adam"} and seen["color"] == "green"
    assert seen["rows"] == "1,2\n"
    assert seen["cwd"].endswith("/input/data/code")
    assert "runs the SageMaker SDK v3 driver" in proc.stderr
