"""Record the CreateProcessingJob requests the SageMaker Python SDK v2 makes for a ScriptProcessor
(``command=["process"]``, one script as ``code``) and for an SKLearn FrameworkProcessor
(``source_dir`` + ``requirements.txt``, which the SDK ships as sourcedir.tar.gz and runproc.sh),
against moto's SageMaker and S3 endpoints (AWS_ENDPOINT_URL):

    python tests/processing/sdk_v2_processing_request.py SOURCE_DIR OUT_DIR

The SDK uploads the code to moto's S3 itself; each request is captured from the botocore call's
parameters as the SDK sends them (OUT_DIR/script.json, OUT_DIR/framework.json). The files in
tests/processing/data/ were made this way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/toolkit-cpu:latest"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "sdk-v2-processing"


def main(source_dir: str, out_dir: str) -> None:
    import boto3
    import sagemaker
    from sagemaker.processing import FrameworkProcessor, ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.sklearn.estimator import SKLearn

    boto_session = boto3.Session(region_name="us-east-1")
    session = sagemaker.Session(boto_session=boto_session, default_bucket=BUCKET)
    captured: list[dict] = []

    def capture(params: dict, **_: object) -> None:
        captured.append(json.loads(json.dumps(params, default=str)))

    session.sagemaker_client.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob", capture)
    def inputs() -> list:
        return [ProcessingInput(source=f"s3://{BUCKET}/raw", destination="/opt/ml/processing/input/raw",
                                input_name="raw")]

    def outputs() -> list:  # fresh each run: the SDK writes the default destination into the object
        return [ProcessingOutput(source="/opt/ml/processing/output/clean", output_name="clean")]

    script = ScriptProcessor(image_uri=IMAGE, command=["process"], role=ROLE, instance_count=1,
                             instance_type="ml.m5.large", env={"COLOR": "green"}, base_job_name="sdk-script",
                             max_runtime_in_seconds=600, sagemaker_session=session)
    script.run(code=str(Path(source_dir) / "prep.py"), inputs=inputs(), outputs=outputs(),
               arguments=["--ratio", "0.5"], wait=False, logs=False)
    framework = FrameworkProcessor(estimator_cls=SKLearn, framework_version="1.2-1", image_uri=IMAGE,
                                   command=["process"], role=ROLE, instance_count=1, instance_type="ml.m5.large",
                                   env={"COLOR": "green"}, base_job_name="sdk-framework",
                                   sagemaker_session=session)
    framework.run(code="prep.py", source_dir=source_dir, inputs=inputs(), outputs=outputs(),
                  arguments=["--ratio", "0.5"], wait=False, logs=False)
    out = Path(out_dir)
    for name, request in zip(("script", "framework"), captured):
        (out / f"{name}.json").write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
    print(f"sagemaker {sagemaker.__version__}: wrote {len(captured)} request(s) to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
