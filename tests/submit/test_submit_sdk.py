"""The same job sent by the real SageMaker Python SDK v2 and by ``toolkit submit``: the requests moto's
server receives are equal field for field (the generated job names aside), and so are the uploads,
key for key, byte for byte and with the same server-side encryption.

The SDK runs in this process against this session's moto server (its clients read AWS_ENDPOINT_URL);
``toolkit`` runs as the console script.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from localjobs import s3_bytes, s3_keys, tar_members, toolkit
from submitjobs import IMAGE, ROLE

sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker Python SDK v2 is in the test extras")

STAMP = re.compile(r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{3}$")


@pytest.fixture
def sdk_session(monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str], bucket: str) -> Any:
    import boto3

    for key, value in {**s3_env, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}.items():
        monkeypatch.setenv(key, value)
    return sagemaker.Session(boto_session=boto3.Session(region_name="us-east-1"), default_bucket=bucket)


def renamed(request: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The request with one generated name put in place of another, wherever it appears."""
    return json.loads(json.dumps(request).replace(old, new))


def uploads(s3: Any, bucket: str, job: str) -> dict[str, tuple[str, Any]]:
    """key under the job's prefix -> (SSE, the tar's members or the bytes)."""
    found = {}
    for key in sorted(k for k in s3_keys(s3, bucket) if k.startswith(job + "/")):
        data = s3_bytes(s3, bucket, key)
        sse = s3.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption", "")
        found[key[len(job):]] = (sse, tar_members(data) if key.endswith(".tar.gz") else data)
    return found


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "train.py").write_text("import lib.util\nprint('training')\n")
    (src / "lib" / "util.py").write_text("VALUE = 1\n")
    (src / "prep.py").write_text("print('processing')\n")
    return src


def test_training_request_equals_the_estimators(sdk_session: Any, received: dict, s3: Any, env: dict, bucket: str,
                                                source: Path) -> None:
    from sagemaker.estimator import Estimator

    Estimator(image_uri=IMAGE, role=ROLE, instance_count=2, instance_type="ml.m5.large", entry_point="train.py",
              source_dir=str(source), hyperparameters={"epochs": 3, "learning-rate": 0.25, "layers": [4, 2],
                                                       "optimizer": "adam"},
              output_path=f"s3://{bucket}/output", checkpoint_s3_uri=f"s3://{bucket}/checkpoints",
              environment={"COLOR": "green"}, max_run=600, sagemaker_session=sdk_session, base_job_name="sdk-v2",
              ).fit({"train": f"s3://{bucket}/data/train"}, wait=False, logs=False)
    proc = toolkit("submit", "train", "--image", IMAGE, "--role", ROLE, "--instance-count", "2", "--instance-type",
                   "ml.m5.large", "--entry-point", "train.py", "--source-dir", str(source),
                   "--hyperparameter", "epochs=3", "--hyperparameter", "learning-rate=0.25",
                   "--hyperparameter", "layers=[4, 2]", "--hyperparameter", "optimizer=adam",
                   "--output-path", f"s3://{bucket}/output", "--checkpoint-s3-uri", f"s3://{bucket}/checkpoints",
                   "--environment", "COLOR=green", "--max-run", "600", "--base-job-name", "sdk-v2",
                   "--channel", f"train=s3://{bucket}/data/train", "--bucket", bucket, env=env)
    assert proc.returncode == 0, proc.stderr

    sdk, ours = received["create_training_job"]
    sdk_job, job = sdk["TrainingJobName"], ours["TrainingJobName"]
    assert STAMP.search(job) and job.startswith("sdk-v2-") and job != sdk_job
    assert ours == renamed(sdk, sdk_job, job)
    assert ours["HyperParameters"]["optimizer"] == '"adam"'  # JSON-encoded as the SDK encodes it
    assert uploads(s3, bucket, job) == uploads(s3, bucket, sdk_job)
    assert set(uploads(s3, bucket, job)) == {"/source/sourcedir.tar.gz"}
    assert uploads(s3, bucket, job)["/source/sourcedir.tar.gz"][0] == "aws:kms"
    assert f"created arn:aws:sagemaker:us-east-1:123456789012:training-job/{job}" in proc.stderr


def test_processing_request_equals_the_script_processors(sdk_session: Any, received: dict, s3: Any, env: dict,
                                                         bucket: str, source: Path, tmp_path: Path) -> None:
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor

    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    (data / "a.csv").write_text("1,2\n")
    (data / "part" / "b.csv").write_text("3,4\n")
    ScriptProcessor(image_uri=IMAGE, command=["process"], role=ROLE, instance_count=1, instance_type="ml.m5.large",
                    env={"COLOR": "green"}, base_job_name="sdk-script", max_runtime_in_seconds=600,
                    sagemaker_session=sdk_session).run(
        code=str(source / "prep.py"), arguments=["--ratio", "0.5"], wait=False, logs=False,
        inputs=[ProcessingInput(source=f"s3://{bucket}/raw", destination="/opt/ml/processing/input/raw",
                                input_name="raw"),
                ProcessingInput(source=str(data), destination="/opt/ml/processing/input/local", input_name="local")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output/clean", output_name="clean")])
    proc = toolkit("submit", "process", "--image", IMAGE, "--role", ROLE, "--instance-type", "ml.m5.large",
                   "--environment", "COLOR=green", "--base-job-name", "sdk-script", "--max-run", "600",
                   "--input", f"raw=s3://{bucket}/raw", "--input", f"local={data}", "--output", "clean",
                   "--code", str(source / "prep.py"), "--bucket", bucket, "--", "--ratio", "0.5", env=env)
    assert proc.returncode == 0, proc.stderr

    sdk, ours = received["create_processing_job"]
    sdk_job, job = sdk["ProcessingJobName"], ours["ProcessingJobName"]
    assert STAMP.search(job) and job.startswith("sdk-script-") and job != sdk_job
    assert ours == renamed(sdk, sdk_job, job)
    assert ours["AppSpecification"]["ContainerEntrypoint"] == ["process", "/opt/ml/processing/input/code/prep.py"]
    assert uploads(s3, bucket, job) == uploads(s3, bucket, sdk_job)
    assert set(uploads(s3, bucket, job)) == {"/input/code/prep.py", "/input/local/a.csv", "/input/local/part/b.csv"}


def test_transform_request_equals_the_transformers(sdk_session: Any, received: dict, env: dict,
                                                   bucket: str) -> None:
    from localjobs import unique
    from sagemaker.transformer import Transformer

    model = unique("model")
    sdk_session.sagemaker_client.create_model(
        ModelName=model, ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/model.tar.gz"})
    Transformer(model_name=model, instance_count=1, instance_type="ml.m5.large", strategy="MultiRecord",
                assemble_with="Line", accept="text/csv", max_concurrent_transforms=2, max_payload=1,
                env={"COLOR": "green"}, sagemaker_session=sdk_session).transform(
        f"s3://{bucket}/batch/in", content_type="text/csv", split_type="Line", wait=False, logs=False)
    proc = toolkit("submit", "transform", "--model", model, "--input", f"s3://{bucket}/batch/in", "--content-type",
                   "text/csv", "--split-type", "Line", "--accept", "text/csv", "--assemble-with", "Line",
                   "--batch-strategy", "MultiRecord", "--max-concurrent", "2", "--max-payload", "1",
                   "--environment", "COLOR=green", "--instance-type", "ml.m5.large", "--bucket", bucket, env=env)
    assert proc.returncode == 0, proc.stderr

    sdk, ours = received["create_transform_job"]
    sdk_job, job = sdk["TransformJobName"], ours["TransformJobName"]
    assert STAMP.search(job) and job.startswith("toolkit-cpu-") and job != sdk_job  # the model image's name
    assert ours == renamed(sdk, sdk_job, job)
    assert ours["TransformOutput"]["S3OutputPath"] == f"s3://{bucket}/{job}"
