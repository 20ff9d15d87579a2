"""Record the CreateTrainingJob request the SageMaker Python SDK v3 (``ModelTrainer``) makes for a
``SourceCode`` with a command and args, against moto's SageMaker and S3 endpoints (AWS_ENDPOINT_URL),
and download what the SDK uploaded for its ``sm_drivers`` channel.

Runs in a venv that has ``sagemaker>=3`` (not a test dependency: it takes minutes to install):

    python tests/local/sdk_v3_request.py SOURCE_DIR OUT.json DRIVERS_DIR

tests/local/data/sdk_v3_request.json was made this way (sagemaker 3.27.0); DRIVERS_DIR gets the SDK's
sourcecode.json, distributed.json and sm_train.sh, as the job's sm_drivers channel holds them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(source_dir: str, out: str, drivers: str) -> None:
    from importlib import metadata

    import boto3
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import Compute, InputData, SourceCode
    from sagemaker.train import ModelTrainer

    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")  # moto has no IAM policy simulator

    boto_session = boto3.Session(region_name="us-east-1")
    session = Session(boto_session=boto_session, default_bucket="sdk-v3-bucket")
    captured: dict = {}

    # sagemaker-core makes the call with a client of its own: watch every client's calls
    import botocore.client

    make_api_call = botocore.client.BaseClient._make_api_call

    def capture(self: object, operation: str, params: dict) -> object:
        if operation == "CreateTrainingJob":
            captured.update(json.loads(json.dumps(params, default=str)))
        return make_api_call(self, operation, params)

    botocore.client.BaseClient._make_api_call = capture
    trainer = ModelTrainer(
        training_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/toolkit-cpu:latest",
        role="arn:aws:iam::123456789012:role/SageMakerRole",
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        source_code=SourceCode(source_dir=source_dir, command="python3 train.py --from-command x",
                               args=["--note", "two words", "--n", 7]),
        hyperparameters={"epochs": 3, "optimizer": "adam"},
        environment={"COLOR": "green"},
        sagemaker_session=session,
        base_job_name="sdk-v3",
    )
    try:
        trainer.train(input_data_config=[InputData(channel_name="train", data_source="s3://sdk-v3-bucket/data/train")],
                      wait=False, logs=False)
    except Exception as exc:  # moto may not answer what the SDK asks after CreateTrainingJob
        print(f"after CreateTrainingJob: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not captured:
        raise SystemExit("the SDK made no CreateTrainingJob request")
    with open(out, "w") as fh:
        json.dump(captured, fh, indent=2, sort_keys=True)
        fh.write("\n")
    s3 = boto_session.client("s3")
    for channel in captured["InputDataConfig"]:
        if channel["ChannelName"] != "sm_drivers":
            continue
        bucket, prefix = channel["DataSource"]["S3DataSource"]["S3Uri"][5:].split("/", 1)
        for name in ("sourcecode.json", "distributed.json", "sm_train.sh"):
            body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}")["Body"].read()
            (Path(drivers) / name).write_bytes(body)
    print(f"sagemaker {metadata.version('sagemaker')}: wrote {out} and {drivers}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
