"""CreateProcessingJob requests made by the real SageMaker Python SDK v2 (a ScriptProcessor with
``command=["process"]`` and an SKLearn FrameworkProcessor with ``command=["process"]``), recorded
against this session's moto server (SageMaker and S3 endpoints) and replayed by
``toolkit local process --in-process``: the code the SDK uploaded, the outputs where the SDK says.

data/ holds a recording of each (sagemaker 2.257.7) for reading; the test records afresh.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import clean_environ
from localjobs import describe, s3_bytes, s3_keys, toolkit

pytest.importorskip("sagemaker", reason="the SageMaker Python SDK v2 is in the test extras")
pytestmark = pytest.mark.skipif(subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0,
                                reason="in-process processing jobs need a private mount namespace (unshare -m)")

HERE = Path(__file__).resolve().parent
BUCKET = "sdk-v2-processing"
PREP = """
import json, os, sys
import helper
out = "/opt/ml/processing/output/clean"
json.dump({"argv": sys.argv[1:], "color": os.environ.get("COLOR"), "helper": helper.VALUE,
           "raw": open("/opt/ml/processing/input/raw/rows.csv").read(), "job": os.environ["SM_PROCESSING_JOB_NAME"]},
          open(os.path.join(out, "seen.json"), "w"))
"""


@pytest.fixture(scope="module")
def recorded(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    import boto3

    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="raw/rows.csv", Body=b"1,2\n")
    root = tmp_path_factory.mktemp("sdk")
    src, out = root / "src", root / "out"
    src.mkdir()
    out.mkdir()
    (src / "prep.py").write_text(PREP)
    (src / "helper.py").write_text("VALUE = 'beside'\n")
    (src / "requirements.txt").write_text("click\n")  # installed already: no download
    subprocess.run([sys.executable, str(HERE / "sdk_v2_processing_request.py"), str(src), str(out)], check=True,
                   timeout=300, env=clean_environ(**env, SAGEMAKER_SUPPRESS_V2_WARNING="1"), capture_output=True)
    return {name: json.loads((out / f"{name}.json").read_text()) for name in ("script", "framework")}


def replay(tmp_path: Path, request: dict[str, Any], s3_env: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return toolkit("local", "process", "--request", str(path), "--in-process", "--workdir", str(tmp_path / "work"),
                   env=s3_env, timeout=300)


def test_script_processor_request_replayed(recorded: dict, s3: Any, s3_env: dict, tmp_path: Path) -> None:
    request = recorded["script"]
    job = request["ProcessingJobName"]
    assert request["AppSpecification"]["ContainerEntrypoint"] == ["process", "/opt/ml/processing/input/code/prep.py"]
    assert f"{job}/input/code/prep.py" in s3_keys(s3, BUCKET)  # where the SDK put the code
    # ScriptProcessor ships one file: helper.py is not there
    s3.put_object(Bucket=BUCKET, Key=f"{job}/input/code/prep.py", Body=PREP.replace("import helper\n", "")
                  .replace('helper.VALUE', '"none"').encode())
    proc = replay(tmp_path, request, s3_env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(s3_bytes(s3, BUCKET, f"{job}/output/clean/seen.json"))
    assert seen == {"argv": ["--ratio", "0.5"], "color": "green", "helper": "none", "raw": "1,2\n", "job": job}
    assert describe(tmp_path / "work", job)["ProcessingJobStatus"] == "Completed"
    assert f"output clean (EndOfJob): 1 file(s) to s3://{BUCKET}/{job}/output/clean" in proc.stderr


def test_framework_processor_request_replayed(recorded: dict, s3: Any, s3_env: dict, tmp_path: Path) -> None:
    request = recorded["framework"]
    job = request["ProcessingJobName"]
    assert request["AppSpecification"]["ContainerEntrypoint"] == ["/bin/bash",
                                                                   "/opt/ml/processing/input/entrypoint/runproc.sh"]
    keys = s3_keys(s3, BUCKET)
    assert {f"{job}/source/sourcedir.tar.gz", f"{job}/source/runproc.sh"} <= keys
    proc = replay(tmp_path, request, s3_env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(s3_bytes(s3, BUCKET, f"{job}/output/clean/seen.json"))
    assert seen == {"argv": ["--ratio", "0.5"], "color": "green", "helper": "beside", "raw": "1,2\n", "job": job}
    assert describe(tmp_path / "work", job)["ProcessingJobStatus"] == "Completed"
