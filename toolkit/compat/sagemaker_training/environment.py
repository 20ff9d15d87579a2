"""Stand-in for ``sagemaker_training.environment``.

``Environment()`` has every property of sagemaker-training 5.x's, with the same values for the same
/opt/ml: they are the toolkit's ``TrainingEnv`` read through ``training_env_dict`` (the object that
``train`` also exports as SM_TRAINING_ENV). The module's paths (``model_dir``, ``input_dir`` ...) and
readers (``read_hyperparameters()`` ...) are there too, computed on first use rather than at import.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Iterator, Optional

from toolkit.builtin.variables import format_value, training_env_dict
from toolkit.compat.importing import module_getattr, not_covered
from toolkit.environment import SETTING_KEYS, SETTING_PREFIX, TrainingEnv, cpu_count, gpu_count, neuron_count, which

SAGEMAKER_BASE_PATH = "/opt/ml"
BASE_PATH_ENV = "SAGEMAKER_BASE_DIR"
HYPERPARAMETERS_FILE = "hyperparameters.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
INPUT_DATA_CONFIG_FILE = "inputdataconfig.json"

# Environment's properties, as sagemaker-training 5.x names them (and as SM_TRAINING_ENV has them)
PROPERTIES = (
    "additional_framework_parameters", "channel_input_dirs", "current_host", "current_instance_group",
    "current_instance_group_hosts", "current_instance_type", "distribution_hosts", "distribution_instance_groups",
    "framework_module", "hosts", "hyperparameters", "input_config_dir", "input_data_config", "input_dir",
    "instance_groups", "instance_groups_dict", "is_hetero", "is_master", "is_modelparallel_enabled",
    "is_smddpmprun_installed", "is_smddprun_installed", "job_name", "log_level", "master_hostname", "model_dir",
    "module_dir", "module_name", "network_interface_name", "num_cpus", "num_gpus", "num_neurons",
    "output_data_dir", "output_dir", "output_intermediate_dir", "resource_config", "topology", "user_entry_point",
)
# the module's own names, each from the TrainingEnv (paths) -- computed on first use
PATHS = {
    "base_dir": lambda e: e.base_dir, "code_dir": lambda e: e.code_dir, "model_dir": lambda e: e.model_dir,
    "input_dir": lambda e: e.input_dir, "input_config_dir": lambda e: e.input_config_dir,
    "output_dir": lambda e: e.output_dir, "output_data_dir": lambda e: e.output_data_dir,
    "output_intermediate_dir": lambda e: e.output_intermediate_dir,
    "hyperparameters_file_dir": lambda e: e.input_config_dir / HYPERPARAMETERS_FILE,
    "input_data_config_file_dir": lambda e: e.input_config_dir / INPUT_DATA_CONFIG_FILE,
    "resource_config_file_dir": lambda e: e.input_config_dir / RESOURCE_CONFIG_FILE,
}
FUNCTIONS = ("Environment", "read_hyperparameters", "read_resource_config", "read_input_data_config",
             "channel_path", "num_gpus", "num_cpus", "num_neurons", "validate_smddprun", "validate_smddpmprun")
_missing = module_getattr(__name__, covered=(*PATHS, *FUNCTIONS))


def __getattr__(name: str) -> Any:
    if name in PATHS:
        return str(PATHS[name](_env()))
    return _missing(name)


@functools.cache
def _env() -> TrainingEnv:
    """The job's environment as this process sees it (read once, as the real module reads it at import)."""
    return TrainingEnv.from_environ(os.environ)


def read_hyperparameters() -> dict:
    """Every hyperparameter, ``sagemaker_*`` settings included, JSON-decoded where it decodes."""
    env = _env()
    return {**env.settings, **env.hyperparameters}


def read_resource_config() -> dict:
    return dict(_env().resource_config)


def read_input_data_config() -> dict:
    return dict(_env().input_data_config)


def channel_path(channel: str) -> str:
    return str(_env().channel_dir(channel))


def num_gpus() -> int:
    return gpu_count()


def num_cpus() -> int:
    return cpu_count()


def num_neurons(instance_type: str) -> int:
    return neuron_count(instance_type)


def validate_smddprun() -> bool:
    return which("smddprun") is not None


def validate_smddpmprun() -> bool:
    return which("smddpmprun") is not None


def _split(hyperparameters: Mapping[str, Any]) -> tuple[dict, dict]:
    settings = {k: v for k, v in hyperparameters.items() if k.startswith(SETTING_PREFIX) or k in SETTING_KEYS}
    return {k: v for k, v in hyperparameters.items() if k not in settings}, settings


# what to_env_vars exports (besides SM_CHANNEL_* and SM_HP_*), as the real method lists them
ENV_VARS = (
    "hosts", "network_interface_name", "hps", "user_entry_point", "framework_params", "resource_config",
    "input_data_config", "output_data_dir", "channels", "current_host", "current_instance_type",
    "current_instance_group", "current_instance_group_hosts", "instance_groups", "instance_groups_dict",
    "distribution_instance_groups", "is_hetero", "module_name", "log_level", "framework_module", "input_dir",
    "input_config_dir", "output_dir", "num_cpus", "num_gpus", "num_neurons", "model_dir", "module_dir",
    "training_env", "user_args", "output_intermediate_dir",
)


class Environment(Mapping):
    """A read-only snapshot of the training environment, as sagemaker_training's ``Environment``.

    It is a mapping of its properties (``dict(env)`` is what SM_TRAINING_ENV holds). The arguments
    replace what the config files say, as in the real class.
    """

    _properties: tuple[str, ...] = PROPERTIES
    _env_vars: tuple[str, ...] = ENV_VARS

    def __init__(self, resource_config: Optional[dict] = None, input_data_config: Optional[dict] = None,
                 hyperparameters: Optional[dict] = None) -> None:
        env = TrainingEnv.from_environ(os.environ)
        if resource_config:
            env = env.with_changes(resource_config=MappingProxyType(dict(resource_config)))
        if input_data_config:
            env = env.with_changes(input_data_config=MappingProxyType(dict(input_data_config)))
        if hyperparameters:
            hps, settings = _split(hyperparameters)
            env = env.with_changes(hyperparameters=MappingProxyType(hps), settings=MappingProxyType(settings))
        self._env = env
        self._values = training_env_dict(env)
        if env.entry_point is None:  # as the real class, which takes str() of a missing sagemaker_program
            self._values["module_name"] = "None"
        # as the real constructor, for code that reads them afterwards
        os.environ["SAGEMAKER_JOB_NAME"] = format_value(env.settings.get("sagemaker_job_name", ""))
        os.environ["CURRENT_HOST"] = env.current_host
        os.environ["SAGEMAKER_REGION"] = env.region

    # -- the mapping of properties --------------------------------------------------------------

    def properties(self) -> list[str]:
        return sorted(self._properties)

    def __getitem__(self, key: str) -> Any:
        if key not in self._properties:
            raise KeyError(f"Trying to access non property {key}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.properties())

    def __len__(self) -> int:
        return len(self._properties)

    def __str__(self) -> str:
        return str(dict(self))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise not_covered(f"{type(self).__module__}.{type(self).__name__}.{name}", (*self._properties, *METHODS))

    # -- methods --------------------------------------------------------------------------------

    def to_cmd_args(self) -> list[str]:
        """The hyperparameters as the script's arguments (what SM_USER_ARGS holds)."""
        return self._env.user_args()

    def to_env_vars(self) -> dict[str, str]:
        """The SM_* variables sagemaker-training exports for this environment."""
        from toolkit.builtin.variables import sm_variables

        exported = sm_variables(self._env)
        exported["SM_TRAINING_ENV"] = format_value(dict(self))
        names = {f"SM_{n.upper()}" for n in self._env_vars}
        names |= {f"SM_CHANNEL_{c.upper()}" for c in self._env.input_data_config}
        names |= {f"SM_HP_{k.upper()}" for k in self._env.hyperparameters}
        if "topology" in self._properties and self._env.resource_config.get("topology"):
            names.add("SM_TOPOLOGY")
        return {name: value for name, value in exported.items() if name in names}

    def sagemaker_s3_output(self) -> Optional[str]:
        return self._env.settings.get("sagemaker_s3_output")


def _property(name: str) -> property:
    return property(lambda self: self._values[name], doc=f"As sagemaker_training's Environment.{name}.")


for _name in PROPERTIES:
    setattr(Environment, _name, _property(_name))
# the real class's get_* methods, each the value of a property
GETTERS = {f"get_{n}": n for n in ("current_instance_group", "current_instance_group_hosts", "instance_groups",
                                   "instance_groups_dict", "distribution_hosts", "master_hostname")}
GETTERS["get_distribution_instance_groups_from_resource_config"] = "distribution_instance_groups"
for _getter, _name in GETTERS.items():
    setattr(Environment, _getter, lambda self, _n=_name: self._values[_n])

METHODS = tuple(n for n in vars(Environment) if not n.startswith("_") and n not in PROPERTIES)
