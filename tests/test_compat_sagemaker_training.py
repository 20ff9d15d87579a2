"""Scripts written for the official containers see exactly what sagemaker-training 5.1.4 gives them.

tests/data/sagemaker_training_env.json was captured by running the real sagemaker-training `train`
(bench/train_capture_env.py). Each case is replayed here with our `train` on the same job, and every
variable and argument the peer handed the script must be identical (machine-dependent counts
normalised). A submit directory in S3 is served by the moto server, as the real job's would be.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from helpers import Job

GOLDEN = json.loads((Path(__file__).parent / "data" / "sagemaker_training_env.json").read_text())
CASES = {case["name"]: case for case in GOLDEN["cases"]}
MACHINE = GOLDEN["machine_dependent"]


def normalise(variables: dict[str, str], base: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in variables.items():
        value = value.replace(base, "/opt/ml")
        if name in MACHINE["variables"]:
            value = "<machine>"
        elif name in MACHINE["inside_json_variables"]:
            data = json.loads(value)
            for key in MACHINE["inside_json_variables"][name]:
                data[key] = "<machine>"
            value = data
        out[name] = value
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_variables_and_argv_as_sagemaker_training(name: str, job: Job, s3, s3_env) -> None:
    case = CASES[name]
    spec = case["job"]
    for file in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
        (job.config / file).write_text(json.dumps(spec[file]))
    for channel in spec["inputdataconfig.json"]:
        (job.base / "input" / "data" / channel).mkdir(parents=True)
    submit = json.loads(spec["hyperparameters.json"].get("sagemaker_submit_directory", "null"))
    if submit and submit.startswith("s3://"):
        bucket, key = submit[5:].split("/", 1)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for filename, text in spec["code_files"].items():
                data = text.encode()
                info = tarfile.TarInfo(filename)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    else:
        for filename, text in spec["code_files"].items():
            job.script(filename, text)
    result = job.run(**(s3_env if submit and submit.startswith("s3://") else {}))
    assert result.returncode == case["exit_code"], result.stderr
    captured = json.loads((job.model / "captured.json").read_text())
    base = str(job.base)

    assert captured["argv"] == case["argv"]
    assert captured["cwd"].replace(base, "/opt/ml") == case["cwd"]
    ours = normalise({k: v for k, v in captured["environ"].items() if k in case["variables"]}, base)
    theirs = normalise(case["variables"], "/opt/ml")
    assert set(ours) == set(theirs), f"missing: {set(theirs) - set(ours)}"
    for variable in sorted(theirs):
        assert ours[variable] == theirs[variable], variable
    # sibling modules of the code folder import as they do under the peer (PYTHONPATH starts with it)
    assert captured["environ"]["PYTHONPATH"].split(":")[0].replace(base, "/opt/ml") == "/opt/ml/code"
