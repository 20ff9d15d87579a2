"""The SM_* variables the user process sees, named and formatted as sagemaker-training 5.x
exports them (plus the SageMaker SDK v3 drivers' names), so scripts written for the official
containers run unchanged. See docs/environment.md for the list."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from toolkit import settings
from toolkit.compat import importing as compat
from toolkit.environment import V3_MASTER_PORT, TrainingEnv, cpu_count, gpu_count, shell_safe, which
from toolkit.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover - types only: train does not build ProcessingEnv
    from toolkit.processingenv import ProcessingEnv


def format_value(value: Any) -> str:
    """As sagemaker_training.mapping.to_env_vars: strings as they are, None as "", else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def training_env_dict(env: TrainingEnv) -> dict[str, Any]:
    """The SM_TRAINING_ENV object: the official toolkit's Environment properties by name."""
    module_dir = env.submit_dir or str(env.code_dir)
    entry = env.entry_point
    hps = dict(env.hyperparameters)
    groups = env.instance_groups
    mp = hps.get("mp_parameters")
    return {
        "additional_framework_parameters": env.framework_params,
        "channel_input_dirs": {c: str(env.channel_dir(c)) for c in env.input_data_config},
        "current_host": env.current_host,
        "current_instance_group": env.current_instance_group,
        "current_instance_group_hosts": env.current_instance_group_hosts,
        "current_instance_type": env.current_instance_type,
        "distribution_hosts": env.distribution_hosts,
        "distribution_instance_groups": env.distribution_instance_groups,
        "framework_module": settings.read(env.environ, "SAGEMAKER_TRAINING_MODULE"),
        "hosts": env.hosts,
        "hyperparameters": hps,
        "input_config_dir": str(env.input_config_dir),
        "input_data_config": dict(env.input_data_config),
        "input_dir": str(env.input_dir),
        "instance_groups": [g.get("instance_group_name") for g in groups],
        "instance_groups_dict": {g.get("instance_group_name"): g for g in groups},
        "is_hetero": len(groups) > 1,
        "is_master": env.current_host == env.master_hostname,
        # as sagemaker-training: None when model parallelism is not configured at all
        "is_modelparallel_enabled": None if mp is None else format_value(mp) not in ("", "{}"),
        "is_smddpmprun_installed": which("smddpmprun") is not None,
        "is_smddprun_installed": which("smddprun") is not None,
        "job_name": settings.read(env.environ, "TRAINING_JOB_NAME"),
        "log_level": env.log_level,
        "master_hostname": env.master_hostname,
        "model_dir": str(env.model_dir),
        "module_dir": module_dir,
        "module_name": entry[:-3] if entry and entry.endswith(".py") else entry,
        "network_interface_name": env.network_interface_name,
        "num_cpus": env.num_cpus,
        "num_gpus": env.num_gpus,
        "num_neurons": env.num_neurons,
        "output_data_dir": str(env.output_data_dir),
        "output_dir": str(env.output_dir),
        "output_intermediate_dir": str(env.output_intermediate_dir),
        "resource_config": dict(env.resource_config),
        "topology": list(env.resource_config.get("topology", [])),
        "user_entry_point": entry,
    }


def sm_variables(env: TrainingEnv) -> dict[str, str]:
    """Every variable exported to the user process, already formatted as strings."""
    t = training_env_dict(env)
    hosts = env.hosts
    values: dict[str, Any] = {
        "SM_HOSTS": hosts,
        "SM_NETWORK_INTERFACE_NAME": env.network_interface_name,
        "SM_HPS": t["hyperparameters"],
        "SM_USER_ENTRY_POINT": t["user_entry_point"],
        "SM_FRAMEWORK_PARAMS": t["additional_framework_parameters"],
        "SM_RESOURCE_CONFIG": t["resource_config"],
        "SM_INPUT_DATA_CONFIG": t["input_data_config"],
        "SM_OUTPUT_DATA_DIR": t["output_data_dir"],
        "SM_CHANNELS": sorted(env.input_data_config),
        "SM_CURRENT_HOST": env.current_host,
        "SM_CURRENT_INSTANCE_TYPE": t["current_instance_type"],
        "SM_CURRENT_INSTANCE_GROUP": t["current_instance_group"],
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": t["current_instance_group_hosts"],
        "SM_INSTANCE_GROUPS": t["instance_groups"],
        "SM_INSTANCE_GROUPS_DICT": t["instance_groups_dict"],
        "SM_DISTRIBUTION_INSTANCE_GROUPS": t["distribution_instance_groups"],
        "SM_IS_HETERO": t["is_hetero"],
        "SM_MODULE_NAME": t["module_name"],
        "SM_LOG_LEVEL": env.log_level,
        "SM_FRAMEWORK_MODULE": t["framework_module"],
        "SM_INPUT_DIR": t["input_dir"],
        "SM_INPUT_CONFIG_DIR": t["input_config_dir"],
        "SM_OUTPUT_DIR": t["output_dir"],
        "SM_NUM_CPUS": t["num_cpus"],
        "SM_NUM_GPUS": t["num_gpus"],
        "SM_NUM_NEURONS": t["num_neurons"],
        "SM_MODEL_DIR": t["model_dir"],
        "SM_MODULE_DIR": t["module_dir"],
        "SM_TRAINING_ENV": t,
        "SM_USER_ARGS": env.user_args(),
        "SM_OUTPUT_INTERMEDIATE_DIR": t["output_intermediate_dir"],
        # names the SageMaker SDK v3 drivers export
        "SM_HOST_COUNT": len(hosts),
        "SM_CURRENT_HOST_RANK": sorted(hosts).index(env.current_host),
        "SM_MASTER_ADDR": env.master_hostname,
        "SM_MASTER_PORT": V3_MASTER_PORT,
        "SM_INPUT_DATA_DIR": str(env.input_data_dir),
        "SM_OUTPUT_FAILURE": str(env.failure_file),
        # plain names the official toolkit sets in its own environment
        "CURRENT_HOST": env.current_host,
        "SAGEMAKER_JOB_NAME": str(env.settings.get("sagemaker_job_name", "")),
        "SAGEMAKER_REGION": env.region,
    }
    if env.source_dir is not None:
        values["SM_SOURCE_DIR"] = str(env.source_dir)
        values["SM_ENTRY_SCRIPT"] = env.entry_point or ""
    if values["SM_TRAINING_ENV"]["topology"]:
        values["SM_TOPOLOGY"] = t["topology"]
    for channel in env.input_data_config:
        _both(values, "SM_CHANNEL_", channel, str(env.channel_dir(channel)))
    for key, value in env.hyperparameters.items():
        _both(values, "SM_HP_", key, value)
    return {name: format_value(value) for name, value in values.items()}


def processing_variables(env: ProcessingEnv) -> dict[str, str]:
    """What ``process`` exports to a processing job's command (docs/environment.md): the job's
    name, hosts, and every input and output folder by name."""
    hosts = env.hosts
    values: dict[str, Any] = {
        "SM_PROCESSING_JOB_NAME": env.job_name,
        "SM_PROCESSING_JOB_CONFIG": str(env.config_dir / "processingjobconfig.json"),
        "SM_PROCESSING_INPUTS": {name: str(path) for name, path in env.inputs.items()},
        "SM_PROCESSING_OUTPUTS": {name: str(path) for name, path in env.outputs.items()},
        "SM_OUTPUT_MESSAGE": str(env.message_file),
        "SM_CURRENT_HOST": env.current_host,
        "SM_HOSTS": hosts,
        "SM_HOST_COUNT": len(hosts),
        "SM_CURRENT_HOST_RANK": hosts.index(env.current_host),
        "SM_CURRENT_INSTANCE_TYPE": env.instance_type,
        "SM_NUM_CPUS": cpu_count(),
        "SM_NUM_GPUS": gpu_count(),
        "SM_LOG_LEVEL": env.log_level,
        "CURRENT_HOST": env.current_host,
    }
    for name, path in env.inputs.items():
        _both(values, "SM_PROCESSING_INPUT_", name, str(path))
    for name, path in env.outputs.items():
        _both(values, "SM_PROCESSING_OUTPUT_", name, str(path))
    return {name: format_value(value) for name, value in values.items()}


def _both(values: dict[str, Any], prefix: str, name: str, value: Any) -> None:
    """Export under the raw upper-cased name (as the official toolkit does) and, when that is
    not a valid shell name, under a shell-safe one too."""
    values[prefix + name.upper()] = value
    values.setdefault(prefix + shell_safe(name).upper(), value)


@hookimpl
def toolkit_environment(env: TrainingEnv) -> Mapping[str, str]:
    # the stand-ins (sagemaker_training, sagemaker_containers, sagemaker_inference) importable by the script;
    # a real installed package wins
    return {**sm_variables(env), "PYTHONPATH": compat.pythonpath(env.environ.get("PYTHONPATH"))}
