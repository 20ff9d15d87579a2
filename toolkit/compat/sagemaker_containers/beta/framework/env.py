"""Stand-in for ``sagemaker_containers.beta.framework.env``: ``TrainingEnv`` and the module's paths and
readers, from the same code as the ``sagemaker_training.environment`` stand-in (the older package's
environment is the newer one's minus the instance groups)."""

from __future__ import annotations

from typing import Any, Optional

from toolkit.compat.importing import module_getattr
from toolkit.compat.sagemaker_training import environment as _training
from toolkit.compat.sagemaker_training.environment import (  # noqa: F401 (the module's names)
    channel_path,
    num_cpus,
    num_gpus,
    read_hyperparameters,
    read_input_data_config,
    read_resource_config,
)

FUNCTIONS = ("TrainingEnv", "channel_path", "num_cpus", "num_gpus", "read_hyperparameters",
             "read_input_data_config", "read_resource_config")
_missing = module_getattr(__name__, covered=(*_training.PATHS, *FUNCTIONS))

# TrainingEnv's properties in sagemaker-containers 2.8
PROPERTIES = (
    "additional_framework_parameters", "channel_input_dirs", "current_host", "framework_module", "hosts",
    "hyperparameters", "input_config_dir", "input_data_config", "input_dir", "is_master", "job_name", "log_level",
    "master_hostname", "model_dir", "module_dir", "module_name", "network_interface_name", "num_cpus", "num_gpus",
    "output_data_dir", "output_dir", "output_intermediate_dir", "resource_config", "user_entry_point",
)
ENV_VARS = (
    "hosts", "network_interface_name", "hps", "user_entry_point", "framework_params", "resource_config",
    "input_data_config", "output_data_dir", "channels", "current_host", "module_name", "log_level",
    "framework_module", "input_dir", "input_config_dir", "output_dir", "num_cpus", "num_gpus", "model_dir",
    "module_dir", "training_env", "user_args", "output_intermediate_dir",
)


def __getattr__(name: str) -> Any:
    if name in _training.PATHS:
        return getattr(_training, name)
    return _missing(name)


class TrainingEnv(_training.Environment):
    """sagemaker_containers' ``TrainingEnv``: the master is always the first host."""

    _properties = PROPERTIES
    _env_vars = ENV_VARS

    def __init__(self, resource_config: Optional[dict] = None, input_data_config: Optional[dict] = None,
                 hyperparameters: Optional[dict] = None) -> None:
        super().__init__(resource_config, input_data_config, hyperparameters)
        first = self._values["hosts"][0]
        self._values = {**self._values, "master_hostname": first, "is_master": self._values["current_host"] == first}
