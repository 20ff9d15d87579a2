"""What ``toolkit submit`` says before and instead of sending: the plan and ``--dry-run``, the SDK's
default bucket, and every error as one line with what to do (exit 2), with nothing uploaded when the
request is wrong. Service errors are moto's SageMaker answering with the error the service sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from localjobs import s3_keys, toolkit, unique
from submitjobs import IMAGE, ROLE


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('training')\n")
    return src


def train(source: Path, *extra: str, image: str = IMAGE, role: str = ROLE) -> list[str]:
    return ["submit", "train", "--image", image, "--role", role, "--instance-type", "ml.m5.large",
            "--source-dir", str(source), "--entry-point", "train.py", *extra]


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_dry_run_prints_the_request_and_the_plan_and_sends_nothing(received: dict, s3: Any, env: dict, bucket: str,
                                                                   source: Path) -> None:
    proc = toolkit(*train(source, "--job-name", "dry", "--channel", f"train=s3://{bucket}/data",
                          "--checkpoint-s3-uri", f"s3://{bucket}/ckpt", "--bucket", bucket, "--dry-run"), env=env)
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)
    assert request["TrainingJobName"] == "dry" and request["RoleArn"] == ROLE
    root = f"s3://{bucket}/dry"
    assert proc.stderr.splitlines() == [
        "TrainingJob dry (us-east-1): where its files are",
        f"  read       source         {root}/source/sourcedir.tar.gz",
        f"  read       channel train  s3://{bucket}/data",
        f"  read+write checkpoints    s3://{bucket}/ckpt",
        f"  write      model          {root}/output/model.tar.gz",
        f"  write      output data    {root}/output/output.tar.gz",
        f"  write      debugger data  {root}/debug-output/",
        f"  write      profiler data  {root}/profiler-output/",
        f"  upload     {source} (as sourcedir.tar.gz) -> {root}/source/sourcedir.tar.gz",
        "dry run: nothing was uploaded or sent"]
    assert s3_keys(s3, bucket) == set() and not received


def test_the_default_bucket_is_the_sdks_and_is_made_once(monkeypatch: pytest.MonkeyPatch, s3: Any, env: dict,
                                                         source: Path) -> None:
    from moto.s3.models import S3Backend

    made: list[str] = []
    original = S3Backend.create_bucket

    def create_bucket(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(f"{bucket_name} in {region_name}")
        return original(self, bucket_name, region_name, *args, **kwargs)
    monkeypatch.setattr(S3Backend, "create_bucket", create_bucket)
    bucket = "sagemaker-eu-west-2-123456789012"  # sagemaker-<region>-<account id from STS>
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    env = {**env, "AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-2"}

    first = toolkit(*train(source, "--job-name", "first"), env=env)
    second = toolkit(*train(source, "--job-name", "second"), env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert made == [f"{bucket} in eu-west-2"]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-2"
    assert s3_keys(s3, bucket) == {"first/source/sourcedir.tar.gz", "second/source/sourcedir.tar.gz"}


@pytest.mark.parametrize("args, message", [
    (["--role", ""], "--role is required: the ARN of the IAM role the job runs as"),
    (["--role", "SageMakerRole"], "RoleArn 'SageMakerRole' is not an IAM role ARN"),
    (["--instance-type", "local"], "instance type 'local': give --instance-type with a SageMaker instance type"),
    (["--channel", "train=./data"], "is not in S3; SageMaker reads and writes s3:// URIs only"),
    (["--max-run", "0"], "Invalid value for '--max-run'"),
    (["--request", "REQUEST"], "request: unknown field 'HyperParameter' (did you mean 'HyperParameters'?)"),
])
def test_an_invalid_request_uploads_nothing(received: dict, s3: Any, env: dict, bucket: str, source: Path,
                                            tmp_path: Path, args: list[str], message: str) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"HyperParameter": {"epochs": "3"}}))
    args = [str(request) if a == "REQUEST" else a for a in args]
    proc = toolkit(*train(source, "--bucket", bucket), *args, env=env)
    assert proc.returncode == 2
    assert message in proc.stderr.splitlines()[-1]
    assert s3_keys(s3, bucket) == set() and not received


def test_no_credentials(env: dict, source: Path, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "none")
    bare = {"AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"], "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_EC2_METADATA_DISABLED": "true"}
    proc = toolkit(*train(source), env=bare)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "toolkit submit train: GetCallerIdentity: no AWS credentials found; set AWS_PROFILE (after `aws configure` "
        "or `aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


def test_no_region(env: dict, source: Path, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "none")
    bare = {k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    proc = toolkit(*train(source), env={**bare, "AWS_CONFIG_FILE": nowhere})
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        "toolkit submit train: no AWS region; give --region, set AWS_REGION (e.g. us-east-1), or set the "
        "profile's region (`aws configure set region us-east-1`)")


@pytest.mark.filterwarnings("ignore:Exception.AccessDeniedException.")  # not modelled by SageMaker, sent all the same
@pytest.mark.parametrize("code, message, said", [
    ("AccessDeniedException", "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
     "sagemaker:CreateTrainingJob", "access denied (User: arn:aws:iam::123456789012:user/dev is not authorized to "
     "perform: sagemaker:CreateTrainingJob); the caller's IAM policy must allow it"),
    ("ValidationException", "1 validation error detected: Value 'ml.bogus' at 'resourceConfig.instanceType' failed "
     "to satisfy constraint: Member must satisfy enum value set", "SageMaker refused ResourceConfig.InstanceType: "
     "1 validation error detected"),
    ("ResourceLimitExceeded", "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 "
     "Instances", "an account quota is reached (The account-level service limit 'ml.p3.2xlarge for training job "
     "usage' is 0 Instances); wait for running jobs to end, use fewer or smaller instances, or request an increase "
     "in Service Quotas"),
    ("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/SageMakerRole. Please ensure that "
     "the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.",
     "SageMaker cannot assume the role (Could not assume role arn:aws:iam::123456789012:role/SageMakerRole. "
     "Please ensure"),
])
def test_service_errors_are_one_line_with_what_to_do(refuse: Callable, env: dict, bucket: str, source: Path,
                                                     code: str, message: str, said: str) -> None:
    refuse("create_training_job", code, message)
    proc = toolkit(*train(source, "--bucket", bucket, "--job-name", unique("refused")), env=env)
    assert proc.returncode == 2
    said_lines = [line for line in proc.stderr.splitlines() if line.startswith("toolkit ")]
    assert said_lines == proc.stderr.splitlines()[-1:], proc.stderr  # after the plan, one line
    assert said_lines[0].startswith("toolkit submit train: CreateTrainingJob: ")
    assert said in said_lines[0]
