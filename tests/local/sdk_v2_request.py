"""Record the CreateTrainingJob request the SageMaker Python SDK v2 makes for an Estimator with
entry_point and source_dir, against moto's SageMaker and S3 endpoints (AWS_ENDPOINT_URL).

Runs in a venv that has ``sagemaker>=2,<3`` (the test extras have it; test_local_sdk.py runs this
against its moto server on every test run that has the SDK, CI's included):

    python tests/local/sdk_v2_request.py SOURCE_DIR OUT.json

The SDK uploads sourcedir.tar.gz to moto's S3 itself; the request is captured from the botocore
call's parameters, as the SDK sends them. tests/local/data/sdk_v2_request.json was made this way.
"""

from __future__ import annotations

import json
import sys


def main(source_dir: str, out: str) -> None:
    import boto3
    import sagemaker
    from sagemaker.estimator import Estimator

    boto_session = boto3.Session(region_name="us-east-1")
    session = sagemaker.Session(boto_session=boto_session, default_bucket="sdk-v2-bucket")
    captured: dict = {}

    def capture(params: dict, **_: object) -> None:
        captured.update(json.loads(json.dumps(params, default=str)))

    session.sagemaker_client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", capture)
    estimator = Estimator(
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/toolkit-cpu:latest",
        role="arn:aws:iam::123456789012:role/SageMakerRole",
        instance_count=1, instance_type="ml.m5.large",
        entry_point="train.py", source_dir=source_dir,
        hyperparameters={"epochs": 3, "learning-rate": 0.25, "layers": [4, 2]},
        output_path="s3://sdk-v2-bucket/output",
        checkpoint_s3_uri="s3://sdk-v2-bucket/checkpoints",
        environment={"COLOR": "green"},
        max_run=600,
        sagemaker_session=session,
        base_job_name="sdk-v2",
    )
    estimator.fit({"train": "s3://sdk-v2-bucket/data/train"}, wait=False, logs=False)
    with open(out, "w") as fh:
        json.dump(captured, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print(f"sagemaker {sagemaker.__version__}: wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
