"""Parsing the SageMaker configuration into TrainingEnv."""

from __future__ import annotations

import json

import pytest

from toolkit import settings
from toolkit.environment import TrainingEnv, decode_value, mask
from toolkit.errors import ConfigError


def test_hyperparameters_are_json_decoded_when_they_decode(job) -> None:
    # SDK v2 JSON-encodes every value, v3 all but strings: both must give the same values.
    job.hyperparameters({"epochs": "3", "lr": "0.1", "flag": "true", "name": '"resnet"',
                         "raw": "plain words", "layers": "[1, 2]"}, encode=False).resources()
    env = TrainingEnv.from_environ(job.environ())
    assert dict(env.hyperparameters) == {"epochs": 3, "lr": 0.1, "flag": True, "name": "resnet",
                                         "raw": "plain words", "layers": [1, 2]}


def test_sagemaker_settings_are_not_user_hyperparameters(job) -> None:
    job.hyperparameters({"epochs": 2, "sagemaker_program": "train.py", "sagemaker_region": "eu-west-1",
                         "_tuning_objective_metric": "loss", "default_user_module_name": "x"}).resources()
    env = TrainingEnv.from_environ(job.environ())
    assert dict(env.hyperparameters) == {"epochs": 2}
    assert env.entry_point == "train.py"
    assert env.region == "eu-west-1"
    assert set(env.settings) == {"sagemaker_program", "sagemaker_region", "_tuning_objective_metric",
                                 "default_user_module_name"}


def test_sagemaker_program_variable_wins_over_the_hyperparameter(job) -> None:
    job.hyperparameters({"sagemaker_program": "from_hp.py"}).resources()
    assert TrainingEnv.from_environ(job.environ(SAGEMAKER_PROGRAM="from_env.py")).entry_point == "from_env.py"


def test_resource_config_fields(job) -> None:
    job.resources(current="algo-2", hosts=("algo-1", "algo-2"))
    env = TrainingEnv.from_environ(job.environ())
    assert (env.current_host, env.hosts, env.current_instance_type) == ("algo-2", ["algo-1", "algo-2"], "ml.m5.xlarge")
    assert env.current_instance_group == "homogeneousCluster"
    assert env.current_instance_group_hosts == ["algo-1", "algo-2"]
    assert env.network_interface_name == "eth0"
    assert env.master_hostname == "algo-1"


def test_missing_resource_config_means_one_host_with_a_warning(job) -> None:
    env = TrainingEnv.from_environ(job.environ())
    assert (env.current_host, env.hosts) == ("algo-1", ["algo-1"])
    assert any("resourceconfig.json not found" in w for w in env.warnings)


def test_base_dir_defaults_to_opt_ml() -> None:
    assert str(TrainingEnv.from_environ({}).base_dir) == "/opt/ml"


@pytest.mark.parametrize("name", ["hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"])
def test_malformed_json_names_the_file(job, name) -> None:
    (job.config / name).write_text('{"a": ')
    with pytest.raises(ConfigError, match=rf"{name}: .* is not valid JSON"):
        TrainingEnv.from_environ(job.environ())


def test_argv_follows_sagemaker_training(job) -> None:
    job.hyperparameters({"b": 1, "alpha": 0.5, "flag": True, "name": "two words", "d": {"y": 2, "x": 1},
                         "items": [1, "a"]}).resources()
    env = TrainingEnv.from_environ(job.environ())
    assert env.user_args() == ["--alpha", "0.5", "-b", "1", "-d", "x=1,y=2", "--flag", "True",
                               "--items", "[1, 'a']", "--name", "two words"]


def test_helpers() -> None:
    assert decode_value("[1]") == [1] and decode_value("x y") == "x y" and decode_value(3) == 3
    assert settings.log_level({"SAGEMAKER_CONTAINER_LOG_LEVEL": "DEBUG"}) == 10
    assert settings.log_level({"TOOLKIT_LOG_LEVEL": "30"}) == 30 and settings.log_level({}) == 20
    assert mask({"api_token": "s", "db_password": "p", "epochs": 1}) == {
        "api_token": "******", "db_password": "******", "epochs": 1}


def test_frozen(job) -> None:
    env = TrainingEnv.from_environ(job.resources().environ())
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        env.region = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        env.hyperparameters["x"] = 1  # type: ignore[index]


def test_toolkit_env_prints_the_parsed_environment_with_secrets_masked(job) -> None:
    from helpers import run_cli

    job.hyperparameters({"api_token": "hunter2", "epochs": 1}).channels("train").resources()
    out = run_cli("toolkit", "env", env=job.environ())
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["hyperparameters"] == {"api_token": "******", "epochs": 1}
    assert data["channels"] == {"train": str(job.base / "input" / "data" / "train")}
    assert "hunter2" not in out.stdout
    variables = json.loads(run_cli("toolkit", "env", "--variables", env=job.environ()).stdout)
    assert variables["SM_HP_EPOCHS"] == "1" and variables["SM_HP_API_TOKEN"] == "******"


def test_mask_argv_hides_secret_values_only() -> None:
    from toolkit.environment import mask_argv

    argv = ["mpirun", "-mca", "plm_rsh_args", "-p 22 -o StrictHostKeyChecking=no",
            "--api-token", "t0k", "--db_password=pw", "--epochs", "3"]
    assert mask_argv(argv) == ["mpirun", "-mca", "plm_rsh_args", "-p 22 -o StrictHostKeyChecking=no",
                               "--api-token", "******", "--db_password=******", "--epochs", "3"]
