"""Messages a new user meets first: each says what was wrong and what would be right."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from localjobs import describe, toolkit, write_script


def only_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("option", "typed", "suggested"), [
    ("--channel", "train", "--channel train=s3://bucket/prefix or --channel train=./folder"),
    ("--environment", "FOO", "--environment FOO=VALUE"),
    ("--hyperparameter", "epochs", "--hyperparameter epochs=VALUE"),
])
def test_key_value_options_suggest_what_was_typed(tmp_path: Path, option: str, typed: str, suggested: str) -> None:
    proc = toolkit("local", "train", option, typed, "--workdir", str(tmp_path))
    assert proc.returncode == 2
    line = only_line(proc.stderr)
    assert line.endswith(f"e.g. {suggested}"), line
    assert "epochs=3" not in line


def test_package_help_does_not_say_image_runs_a_container() -> None:
    out = toolkit("package", "--help").stdout
    image_help = " ".join(out.split("--image TEXT", 1)[1].split("--", 1)[0].split())
    assert "nothing is run" in image_help and "container" not in image_help, image_help


def test_rerun_of_a_failed_job_says_how(tmp_path: Path) -> None:
    write_script(tmp_path / "src", "raise SystemExit(3)\n")
    work = tmp_path / "work"
    args = ["local", "train", "--job-name", "flaky", "--source-dir", str(tmp_path / "src"), "--entry-point",
            "train.py", "--workdir", str(work)]
    assert toolkit(*args).returncode == 3
    line = only_line(toolkit(*args).stderr)
    assert "a job named 'flaky' already ran here (Failed)" in line
    assert "give a new --job-name" in line and f"toolkit local clean --workdir {work} flaky" in line
    # and the command it names does make the name free again
    assert toolkit("local", "clean", "--workdir", str(work), "flaky").returncode == 0
    assert toolkit(*args).returncode == 3


def _no_credentials(s3_env: dict) -> dict:
    env = {k: v for k, v in s3_env.items() if not k.startswith("AWS_ACCESS_KEY") and not k.startswith("AWS_SECRET")}
    return {**env, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}


def test_no_credentials_in_the_fetchers_words(s3_env: dict, tmp_path: Path) -> None:
    write_script(tmp_path / "src", "pass\n")
    env = _no_credentials(s3_env)
    proc = toolkit("package", "--source-dir", str(tmp_path / "src"), "--entry-point", "train.py",
                   "--output-path", "s3://some-bucket/out", "--job-name", "creds", env=env)
    assert proc.returncode == 2
    line = only_line(proc.stderr)
    assert "NoCredentialsError" not in line and "Unable to locate credentials" not in line
    assert "no AWS credentials found; give the job a role or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "creds", "--source-dir", str(tmp_path / "src"), "--entry-point",
                   "train.py", "--channel", "train=s3://some-bucket/data", "--workdir", str(work), env=env)
    assert proc.returncode == 2
    reason = describe(work, "creds")["FailureReason"]
    assert "NoCredentialsError" not in reason and "no AWS credentials found" in reason, reason


def test_engine_without_daemon_is_named_before_data_is_copied(tmp_path: Path) -> None:
    """A docker whose daemon does not answer: the engine is blamed, not the image, and no channel
    data has been copied yet."""
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                    "Is the docker daemon running?' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    write_script(tmp_path / "data", "1,2\n", "a.csv")
    write_script(tmp_path / "src", "pass\n")
    work = tmp_path / "work"
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = toolkit("local", "train", "--job-name", "nodaemon", "--image", "some/image:1", "--engine", "docker",
                   "--source-dir", str(tmp_path / "src"), "--entry-point", "train.py",
                   "--channel", f"train={tmp_path / 'data'}", "--workdir", str(work), env=env)
    assert proc.returncode == 2
    reason = describe(work, "nodaemon")["FailureReason"]
    assert "container engine docker does not answer (Cannot connect to the Docker daemon" in reason, reason
    assert "some/image" not in reason
    assert not list((work / "nodaemon").glob("*/input/data/train/*"))
    proc = toolkit("local", "serve", str(tmp_path / "data"), "--image", "some/image:1", "--engine", "docker",
                   "--workdir", str(work), env=env)
    assert proc.returncode == 2 and "does not answer" in only_line(proc.stderr)
    assert not any(p.name.startswith("toolkit-local-endpoint") for p in work.iterdir())


def test_env_variables_masks_secrets_inside_json(tmp_path: Path) -> None:
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"api_token": '"sekrit-value"', "epochs": "3", "sagemaker_program": '"train.py"'}))
    proc = toolkit("env", "--variables", env={"SAGEMAKER_BASE_DIR": str(base)})
    assert proc.returncode == 0, proc.stderr
    variables = json.loads(proc.stdout)
    assert "sekrit-value" not in proc.stdout
    assert json.loads(variables["SM_HPS"])["epochs"] == 3
    assert json.loads(variables["SM_USER_ARGS"])[:2] == ["--api_token", "******"]
    assert "epochs" in json.loads(variables["SM_TRAINING_ENV"])["hyperparameters"]


