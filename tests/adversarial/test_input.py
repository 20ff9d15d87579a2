"""Hostile or careless input to `train` (and `serve`'s settings): each is one line saying what is
wrong and what would be right, exit 2, the failure file written, no traceback, nothing else
written. Real `train`/`serve` processes on real job folders; S3 through the moto server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import BIN, Job, clean_environ, free_port


def assert_refused(job: Job, result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    message = job.failure.read_text()
    assert "\n" not in message.strip(), message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not job.success.exists()
    return message


def ready(job: Job) -> Job:
    job.resources()
    job.script("train.py", "")
    return job


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_hyperparameters_in_utf16(job: Job, encoding: str) -> None:
    ready(job)
    (job.config / "hyperparameters.json").write_bytes('{"sagemaker_program": "\\"train.py\\""}'.encode(encoding))
    assert_refused(job, job.run(), "hyperparameters.json", "UTF-16", "UTF-8")


def test_hyperparameters_not_utf8(job: Job) -> None:
    ready(job)
    (job.config / "hyperparameters.json").write_bytes(b'{"name": "caf\xe9"}')
    assert_refused(job, job.run(), "hyperparameters.json", "not UTF-8")


@pytest.mark.parametrize("name", ["hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"])
def test_json_nested_100000_deep(job: Job, name: str) -> None:
    ready(job).hyperparameters({"sagemaker_program": "train.py"})
    (job.config / name).write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert_refused(job, job.run(), name, "nested more than 100 levels deep")


def test_hyperparameter_value_nested_deep(job: Job) -> None:
    ready(job)
    deep = "[" * 5000 + "]" * 5000
    (job.config / "hyperparameters.json").write_text(json.dumps({"sagemaker_program": '"train.py"', "x": deep}))
    assert_refused(job, job.run(), "'x'", "nested more than 100 levels deep")


@pytest.mark.parametrize("hps", [{"a\u0000b": 1}, {"a": "x\u0000y"}, {"a": {"k": "x\u0000"}}])
def test_nul_in_a_hyperparameter(job: Job, hps: dict) -> None:
    ready(job).hyperparameters({"sagemaker_program": "train.py", **hps})
    assert_refused(job, job.run(), "NUL character")


def test_equals_sign_in_a_hyperparameter_key(job: Job) -> None:
    ready(job).hyperparameters({"sagemaker_program": "train.py", "a=b": 1})
    assert_refused(job, job.run(), "hyperparameter 'a=b'", "'='", "'a_b'")


@pytest.mark.parametrize("name", ["a=b", "../x", "a/b", "", "x" * 65])
def test_channel_name_that_is_not_a_sagemaker_name(job: Job, name: str) -> None:
    ready(job).hyperparameters({"sagemaker_program": "train.py"})
    (job.config / "inputdataconfig.json").write_text(json.dumps({name: {"TrainingInputMode": "File"}}))
    assert_refused(job, job.run(), "inputdataconfig.json", "channel name")


def test_instance_group_name_given_as_a_list(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"})
    job.resources(instance_groups=[{"instance_group_name": ["g"], "instance_type": "ml.m5.xlarge",
                                    "hosts": ["algo-1"]}])
    job.script("train.py", "")
    assert_refused(job, job.run(), '"instance_group_name" must be a string', '["g"]')


def test_current_group_name_given_as_a_number(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources(current_group_name=3)
    job.script("train.py", "")
    assert_refused(job, job.run(), '"current_group_name" must be a string')


def test_s3_prefix_with_an_object_and_a_folder_of_the_same_name(job: Job, s3, s3_env: dict[str, str]) -> None:
    s3.create_bucket(Bucket="clash")
    s3.put_object(Bucket="clash", Key="p/train.py", Body=b"print('x')\n")
    s3.put_object(Bucket="clash", Key="p/a", Body=b"file")
    s3.put_object(Bucket="clash", Key="p/a/b", Body=b"file in folder")
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://clash/p/"})
    job.resources()
    result = job.run(**s3_env)
    assert_refused(job, result, "p/a is both an object and a folder", "p/a/b")
    assert not job.code.exists()


# --- a re-run on the same /opt/ml ------------------------------------------------------------


def test_rerun_after_success_that_fails_leaves_only_failure(job: Job) -> None:
    ready(job).hyperparameters({"sagemaker_program": "train.py"})
    assert job.run().returncode == 0 and job.success.exists()
    (job.config / "hyperparameters.json").write_text("{broken")
    assert_refused(job, job.run(), "not valid JSON")
    assert not job.success.exists()


def test_rerun_after_failure_that_succeeds_leaves_only_success(job: Job) -> None:
    ready(job)
    (job.config / "hyperparameters.json").write_text("{broken")
    assert job.run().returncode == 2 and job.failure.exists()
    job.hyperparameters({"sagemaker_program": "train.py"})
    assert job.run().returncode == 0
    assert job.success.exists() and not job.failure.exists()


def test_rerun_drops_an_old_failure_but_keeps_the_one_this_job_writes(job: Job) -> None:
    job.resources()
    job.failure.parent.mkdir(parents=True)
    job.failure.write_text("an old reason from another run")
    job.hyperparameters({"sagemaker_program": "train.py"})
    job.script("train.py", "import os, sys\n"
               "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('my own reason')\n"
               "sys.exit(4)\n")
    assert job.run().returncode == 4
    assert job.failure.read_text() == "my own reason"
    job.script("train.py", "import sys\nsys.exit('new reason')\n")
    assert job.run().returncode == 1
    assert job.failure.read_text().startswith("new reason")


# --- entry points outside the code folder ----------------------------------------------------


@pytest.mark.parametrize("program", ["../../x.py", "/bin/echo", "a/../../x.py", "./../x.py", "a/b/../../../x.py",
                                     "C:\\x.py", "\\\\host\\x.py"])
def test_entry_point_outside_the_code_folder(job: Job, tmp_path: Path, program: str) -> None:
    marker = tmp_path / "ran"
    outside = job.base / "x.py"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text(f"open({str(marker)!r}, 'w').write('escaped')\n")
    (job.root / "x.py").write_text(outside.read_text())
    ready(job).hyperparameters({"sagemaker_program": program})
    assert_refused(job, job.run(), repr(program), "inside the code folder")
    assert not marker.exists()
    result = job.run(SAGEMAKER_PROGRAM=program)
    assert_refused(job, result, "SAGEMAKER_PROGRAM")
    assert not marker.exists()


def test_entry_point_in_a_subfolder_still_runs(job: Job) -> None:
    job.resources().hyperparameters({"sagemaker_program": "src/./train.py"})
    job.script("src/train.py", "print('ok')\n")
    assert job.run().returncode == 0


def serve(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path), SAGEMAKER_BIND_TO_PORT=str(free_port()), **extra)
    return subprocess.run([str(BIN / "serve")], env=env, capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_program_outside_the_code_folder(tmp_path: Path) -> None:
    result = serve(tmp_path, SAGEMAKER_PROGRAM="../../evil.py")
    assert result.returncode == 2
    assert "SAGEMAKER_PROGRAM '../../evil.py' points outside the code folder" in result.stderr
    assert "Traceback" not in result.stderr


# --- numeric settings --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999", "ten"])
@pytest.mark.parametrize("name", ["SAGEMAKER_MODEL_SERVER_TIMEOUT", "TOOLKIT_SERVE_STOP_SECONDS",
                                  "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MAX_PAYLOAD_IN_MB"])
def test_serve_refuses_non_finite_numbers(tmp_path: Path, name: str, value: str) -> None:
    result = serve(tmp_path, **{name: value})
    assert result.returncode == 2, result.stderr[-1000:]
    lines = [ln for ln in result.stderr.splitlines() if name in ln]
    assert lines and ("finite" in lines[0] or "not a" in lines[0]), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["TOOLKIT_STOP_GRACE_SECONDS", "TOOLKIT_FETCH_ATTEMPTS",
                                  "TOOLKIT_MAX_EXTRACT_BYTES", "TOOLKIT_MAX_EXTRACT_MEMBERS",
                                  "TOOLKIT_MAX_EXTRACT_RATIO"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_train_refuses_non_finite_numbers(job: Job, tmp_path: Path, name: str, value: str) -> None:
    src = tmp_path / "src.tar"
    import tarfile
    with tarfile.open(src, "w") as tar:
        script = tmp_path / "train.py"
        script.write_text("print('ok')\n")
        tar.add(script, "train.py")
    job.resources().hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(src)})
    assert_refused(job, job.run(**{name: value}), f"{name}='{value}'", "finite")


def test_local_sync_interval_refuses_nan() -> None:
    from toolkit.errors import ConfigError
    from toolkit.settings import read

    with pytest.raises(ConfigError, match="not a finite number"):
        read({"TOOLKIT_LOCAL_SYNC_SECONDS": "nan"}, "TOOLKIT_LOCAL_SYNC_SECONDS")


@pytest.mark.parametrize("raw, whole, ok", [
    ("3", True, 3), ("+3", True, 3), ("3.0", True, None), ("1e3", True, None), ("0", True, 0), ("-1", True, None),
    ("2.5", False, 2.5), ("1e3", False, 1000.0), ("nan", False, None), ("inf", False, None), ("", True, 100),
])
def test_one_parser_for_every_numeric_setting(raw: str, whole: bool, ok: object) -> None:
    from toolkit.errors import ConfigError
    from toolkit.settings import read

    # rows of the table: a whole number of at least 0 (default 100), a number of at least 0
    name = "TOOLKIT_MAX_EXTRACT_RATIO" if whole else "TOOLKIT_MAX_BATCH_WAIT_MS"
    if ok is None:
        with pytest.raises(ConfigError):
            read({name: raw}, name)
    else:
        assert read({name: raw}, name) == ok


@pytest.mark.parametrize("names, clash", [
    (["a", "a/b"], ("a", "a/b")), (["x/a", "x/a/b/c"], ("x/a", "x/a/b/c")),
    (["a", "ab/c", "a.txt"], None), (["a/b", "a/c"], None), ([], None),
])
def test_file_and_folder(names: list[str], clash: object) -> None:
    from toolkit.checks import file_and_folder

    assert file_and_folder(names) == clash
