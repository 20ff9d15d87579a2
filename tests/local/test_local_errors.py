"""Bad input to ``toolkit local train``: one clear line, exit code 2, nothing run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from localjobs import describe, toolkit, unique, write_script


def only_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("request_text", "expected"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object (a CreateTrainingJob request), got list"),
    ('{"HyperParameter": {}}', "unknown field 'HyperParameter' (did you mean 'HyperParameters'?)"),
    ('{"HyperParameters": {"epochs": 3}}', 'HyperParameters.epochs: must be a string'),
    ('{"TrainingJobName": "bad_name"}', "TrainingJobName 'bad_name' is not valid"),
    ('{"InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {}}}]}',
     "InputDataConfig[0] (train).DataSource.S3DataSource.S3Uri: missing"),
    ('{"InputDataConfig": [{"ChannelName": "train", "InputMode": "Stream", "DataSource": {"S3DataSource": '
     '{"S3Uri": "/tmp"}}}]}', "InputDataConfig[0] (train).InputMode: 'Stream' is not one of File, Pipe, FastFile"),
    ('{"ResourceConfig": {"InstanceCount": 0}}', "ResourceConfig.InstanceCount: must be a whole number of at least 1"),
    ('{"AlgorithmSpecification": {"TrainingImage": "x", "Entrypoint": ["a"]}}',
     "AlgorithmSpecification: unknown field 'Entrypoint' (did you mean 'ContainerEntrypoint'?)"),
])
def test_bad_request_is_one_line(tmp_path: Path, request_text: str, expected: str) -> None:
    path = tmp_path / "request.json"
    path.write_text(request_text)
    proc = toolkit("local", "train", "--request", str(path), "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 2
    line = only_line(proc.stderr)
    assert line.startswith("toolkit local train: ") and expected in line, line
    assert not (tmp_path / "work").exists()


def test_bad_option_is_one_line(tmp_path: Path) -> None:
    proc = toolkit("local", "train", "--hyperparameter", "epochs", "--workdir", str(tmp_path))
    assert proc.returncode == 2
    assert "--hyperparameter 'epochs': expected NAME=VALUE" in only_line(proc.stderr)
    proc = toolkit("local", "train", "--channel", "train=ftp://host/x", "--workdir", str(tmp_path))
    assert proc.returncode == 2
    assert "has an unsupported scheme; expected s3://bucket/prefix" in only_line(proc.stderr)


def test_missing_entry_point_is_one_line(tmp_path: Path) -> None:
    write_script(tmp_path / "src", "pass\n")
    proc = toolkit("local", "train", "--source-dir", str(tmp_path / "src"), "--entry-point", "nope.py",
                   "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 2
    assert "--entry-point nope.py is not a file in --source-dir" in only_line(proc.stderr)


def test_missing_channel_data_fails_the_job(s3: Any, s3_env: dict, tmp_path: Path) -> None:
    bucket = unique("empty")
    s3.create_bucket(Bucket=bucket)
    write_script(tmp_path / "src", "raise SystemExit('must not run')\n")
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "no-data", "--source-dir", str(tmp_path / "src"),
                   "--entry-point", "train.py", "--channel", f"train=s3://{bucket}/nothing/", "--output-path",
                   f"s3://{bucket}/out", "--workdir", str(work), env=s3_env)
    assert proc.returncode == 2
    answer = describe(work, "no-data")
    assert answer["TrainingJobStatus"] == "Failed"
    assert answer["FailureReason"] == (f"ClientError: channel 'train': no objects found under s3://{bucket}/nothing/; "
                                       f"the platform fails a job whose channel is empty")
    assert "must not run" not in proc.stderr


def test_missing_bucket_and_local_channel(s3_env: dict, tmp_path: Path) -> None:
    write_script(tmp_path / "src", "pass\n")
    work = tmp_path / "work"
    common = ["--source-dir", str(tmp_path / "src"), "--entry-point", "train.py", "--workdir", str(work),
              "--output-path", str(tmp_path / "out")]
    proc = toolkit("local", "train", "--job-name", "no-bucket", "--channel", "train=s3://no-such-bucket-x/data",
                   *common, env=s3_env)
    assert proc.returncode == 2
    assert "bucket 'no-such-bucket-x' does not exist" in describe(work, "no-bucket")["FailureReason"]
    proc = toolkit("local", "train", "--job-name", "no-folder", "--channel", f"train={tmp_path / 'missing'}", *common)
    assert proc.returncode == 2
    assert describe(work, "no-folder")["FailureReason"] == (
        f"ClientError: channel 'train': local path {tmp_path / 'missing'} does not exist")


def test_job_names_are_unique(tmp_path: Path) -> None:
    write_script(tmp_path / "src", "pass\n")
    args = ["local", "train", "--job-name", "once", "--source-dir", str(tmp_path / "src"), "--entry-point",
            "train.py", "--workdir", str(tmp_path / "work")]
    assert toolkit(*args).returncode == 0
    proc = toolkit(*args)
    assert proc.returncode == 2
    assert "a job named 'once' already ran here" in only_line(proc.stderr)
    assert json.loads((tmp_path / "work" / "once.json").read_text())["TrainingJobStatus"] == "Completed"


def test_pipe_channel_then_missing_channel(tmp_path: Path) -> None:
    write_script(tmp_path / "src", "raise SystemExit('must not run')\n")
    write_script(tmp_path / "data", "x\n", "a.csv")
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "pipe-missing", "--source-dir", str(tmp_path / "src"),
                   "--entry-point", "train.py", "--input-mode", "Pipe", "--channel", f"a={tmp_path / 'data'}",
                   "--channel", f"b={tmp_path / 'nothing'}", "--workdir", str(work))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert describe(work, "pipe-missing")["FailureReason"] == (
        f"ClientError: channel 'b': local path {tmp_path / 'nothing'} does not exist")
