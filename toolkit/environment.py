"""The SageMaker training environment, parsed once into a frozen object.

This is the one module that reads SageMaker's configuration: the environment mapping given to
it and the JSON files under ``<base>/input/config``. Everything else receives a ``TrainingEnv``.
Nothing here runs at import time, and nothing shells out except the GPU and Neuron counts,
which are computed at most once per process and only when the tool exists.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional

from toolkit import checks, settings
from toolkit.errors import ConfigError
from toolkit.redact import MASK, SECRET_WORDS, looks_secret, mask, mask_argv, mask_uri  # noqa: F401 - re-exported

DEFAULT_BASE_DIR = settings.DEFAULT_BASE_DIR
# Keys that are the platform's settings rather than the user's hyperparameters (as in
# sagemaker-training's params.SAGEMAKER_HYPERPARAMETERS, plus every other sagemaker_* key).
SETTING_KEYS = frozenset({"_tuning_objective_metric", "default_user_module_name"})
SETTING_PREFIX = "sagemaker_"
V3_MASTER_PORT = 7777  # what the SageMaker SDK v3 drivers export as SM_MASTER_PORT
# The SDK v2 ``distribution`` choices, as the hyperparameters it sets (one at most).
DISTRIBUTION_SWITCHES = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_torch_distributed_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
)


def decode_value(value: Any) -> Any:
    """JSON-decode a hyperparameter when it decodes (SDK v2 encodes all values, v3 all but str)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _enabled(value: Any, key: str) -> bool:
    """A ``sagemaker_<x>_enabled`` hyperparameter (JSON ``true``, ``"true"``, ``1``...) by the one boolean parser."""
    return value not in (None, "") and settings.parse_bool(value, f"hyperparameter {key}={value!r}")


def which(name: str, path: Optional[str] = None) -> Optional[str]:
    """The executable ``name`` on ``path`` (default: PATH), as ``shutil.which`` finds it.

    Asked on every job start (nvidia-smi, neuron-ls, smddprun...): importing shutil for it would
    also load bz2 and lzma.
    """
    if os.sep in name:
        return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            path = os.defpath
    if not path:  # PATH='' finds nothing (PATH=':' is the current folder), as in shutil
        return None
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


@functools.cache
def gpu_count() -> int:
    """GPUs visible to this container: asks nvidia-smi once, and only when it is installed."""
    exe = which("nvidia-smi")
    if exe is None:
        return 0
    import subprocess

    try:
        out = subprocess.run([exe, "--list-gpus"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@functools.cache
def neuron_count(instance_type: str = "") -> int:
    """Neuron cores: asks neuron-ls once, and only when it is installed."""
    if "trn2.48xlarge" in instance_type:
        return 64  # as sagemaker-training: neuron-ls is not reliable there
    exe = which("neuron-ls")
    if exe is None:
        return 0
    import subprocess

    try:
        out = subprocess.run([exe, "-j"], capture_output=True, text=True, timeout=30)
        return sum(int(item.get("nc_count", 0)) for item in json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, AttributeError):
        return 0


def cpu_count() -> int:
    return os.cpu_count() or 1


def shell_safe(name: str) -> str:
    """A name usable in a shell variable: '-' and '.' (and anything else odd) become '_'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _read_json(path: Path, what: str, required_type: type = dict) -> Any:
    """A config file's JSON, or None when the file is missing; anything else wrong with it is a
    ``ConfigError`` naming the file (encoding, syntax, nesting, NUL characters, type)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or raw[:2].count(b"\x00") == 1:  # with or without a BOM
        raise ConfigError(f"{path}: {what} is UTF-16 text; SageMaker writes UTF-8 JSON here "
                          f"(convert it, e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                          f"{exc.start}); SageMaker writes UTF-8 JSON here") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{path}: {what} is nested more than {checks.MAX_DEPTH} levels deep; "
                          f"SageMaker writes a flat JSON object here") from None
    except ValueError as exc:
        raise ConfigError(
            f"{path}: {what} is not valid JSON ({exc}); SageMaker writes a JSON object here"
        ) from exc
    if not isinstance(data, required_type):
        raise ConfigError(
            f"{path}: {what} must be a JSON object, got {type(data).__name__}"
        )
    try:
        checks.check_data(data)
    except checks.Unsafe as exc:
        raise ConfigError(f"{path}: {what} {exc}") from None
    return data


def _hyperparameters(path: Path) -> dict[str, Any]:
    """hyperparameters.json decoded (each value JSON-decoded when it decodes), with keys that can
    become SM_HP_<KEY> variables and values that fit on a command line."""
    raw = _read_json(path, "hyperparameters") or {}
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            checks.check_variable_name("hyperparameter", key)
            decoded[key] = decode_value(value)
            checks.check_data(decoded[key])
        except RecursionError:
            raise ConfigError(f"{path}: hyperparameter {key!r} is nested more than {checks.MAX_DEPTH} "
                              f"levels deep") from None
        except checks.Unsafe as exc:
            raise ConfigError(f"{path}: hyperparameter {key!r} {exc}" if "hyperparameter" not in str(exc)
                              else f"{path}: {exc}") from None
    return decoded


def _parse_resource_config(path: Path, warnings: list[str]) -> dict[str, Any]:
    data = _read_json(path, "resource config")
    if data is None:
        warnings.append(
            f"{path} not found: running as a single host 'algo-1' (outside SageMaker)"
        )
        return {"current_host": "algo-1", "hosts": ["algo-1"]}
    hosts = data.get("hosts")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f'{path}: "hosts" must be a non-empty list of host names, e.g. ["algo-1"]')
    current = data.get("current_host")
    if not isinstance(current, str) or not current:
        raise ConfigError(f'{path}: "current_host" is missing; expected one of {hosts}')
    if current not in hosts:
        raise ConfigError(f'{path}: "current_host" {current!r} is not in "hosts" {hosts}')
    groups = data.get("instance_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ConfigError(f'{path}: "instance_groups" must be a list of objects')
    for group in groups:
        name = group.get("instance_group_name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f'{path}: "instance_group_name" must be a string such as "train-group", '
                              f"got {json.dumps(name)}")
        members = group.get("hosts", [])
        if not isinstance(members, list) or not all(isinstance(h, str) for h in members):
            raise ConfigError(f'{path}: "hosts" of instance group {name!r} must be a list of host names')
    group_name = data.get("current_group_name")
    if group_name is not None and not isinstance(group_name, str):
        raise ConfigError(f'{path}: "current_group_name" must be a string such as "homogeneousCluster", '
                          f"got {json.dumps(group_name)}")
    return data


def check_entry_point(entry: Optional[str], what: str = "entry point") -> Optional[str]:
    """``entry`` when it names a file or module inside the code folder (``train.py``,
    ``src/train.py``, ``pkg.trainer``); a ``ConfigError`` for an absolute path or one with ``..``."""
    if entry in (None, ""):
        return entry
    try:
        checks.relative_path(str(entry))
    except checks.Unsafe as exc:
        reason = "is an absolute path" if str(exc).startswith("has an absolute") else str(exc).replace(
            "the destination", "the code folder")
        raise ConfigError(f"{what} {entry!r} {reason}; name a file or module inside the code folder, "
                          f"e.g. train.py or src/train.py") from None
    return entry


def _git_uri(settings: Mapping[str, Any]) -> Optional[str]:
    """The SDK's git_config given as sagemaker_git_* settings, as a ``git+URL@REF`` URI
    (credentials stay in the settings, never in the URI)."""
    repo = settings.get("sagemaker_git_repo")
    if not repo:
        return None
    ref = settings.get("sagemaker_git_commit") or settings.get("sagemaker_git_branch")
    uri = f"git+{repo}" if not str(repo).startswith("git+") else str(repo)
    return f"{uri}@{ref}" if ref else uri


class _Cluster:
    """The hosts of a job, from its resourceconfig.json (training and processing alike)."""

    resource_config: Mapping[str, Any]

    @property
    def current_host(self) -> str:
        return str(self.resource_config["current_host"])

    @property
    def hosts(self) -> list[str]:
        """Hosts in the order SageMaker lists them (algo-1, algo-2, ...)."""
        return list(self.resource_config["hosts"])


@dataclass(frozen=True)
class TrainingEnv(_Cluster):
    """Everything a training run needs to know, read once from (environ, base dir)."""

    base_dir: Path
    environ: Mapping[str, str]
    hyperparameters: Mapping[str, Any]
    settings: Mapping[str, Any]
    input_data_config: Mapping[str, Any]
    resource_config: Mapping[str, Any]
    entry_point: Optional[str]
    submit_dir: Optional[str]
    log_level: int
    region: str
    job_name: str
    warnings: tuple[str, ...] = field(default=())
    source_dir: Optional[Path] = None  # set by the train flow once the code is fetched
    # SageMaker SDK v3 (ModelTrainer): input/data/sm_drivers/{sourcecode,distributed}.json
    source_code: Optional[Mapping[str, Any]] = None
    distributed: Optional[Mapping[str, Any]] = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], base_dir: Optional[str] = None) -> TrainingEnv:
        """Parse the environment; raises ``ConfigError`` naming the file and what is wrong."""
        base = settings.base_dir(environ, base_dir)
        config = base / "input" / "config"
        warnings: list[str] = []
        all_hps = _hyperparameters(config / "hyperparameters.json")
        platform = {
            k: v for k, v in all_hps.items() if k.startswith(SETTING_PREFIX) or k in SETTING_KEYS
        }
        hps = {k: v for k, v in all_hps.items() if k not in platform}
        channels = _read_json(config / "inputdataconfig.json", "input data config") or {}
        for name, spec in channels.items():
            try:
                checks.check_channel_name(name)
            except checks.Unsafe as exc:
                raise ConfigError(f"{config / 'inputdataconfig.json'}: {exc}") from None
            if not isinstance(spec, dict):
                raise ConfigError(
                    f"{config / 'inputdataconfig.json'}: channel {name!r} must be an object "
                    f'such as {{"TrainingInputMode": "File"}}'
                )
        resources = _parse_resource_config(config / "resourceconfig.json", warnings)

        drivers = base / "input" / "data" / "sm_drivers"
        source_code = _read_json(drivers / "sourcecode.json", "SDK v3 source code config")
        distributed = _read_json(drivers / "distributed.json", "SDK v3 distributed config")
        program = settings.read(environ, "SAGEMAKER_PROGRAM") or platform.get("sagemaker_program")
        submit = platform.get("sagemaker_submit_directory") or settings.read(
            environ, "SAGEMAKER_SUBMIT_DIRECTORY"
        ) or _git_uri(platform)
        level = settings.log_level(environ, platform.get("sagemaker_container_log_level"))
        region = settings.region(environ, platform.get("sagemaker_region"))
        job = str(settings.read(environ, "TRAINING_JOB_NAME") or platform.get("sagemaker_job_name") or "")
        return cls(
            base_dir=base,
            environ=MappingProxyType(dict(environ)),
            hyperparameters=MappingProxyType(hps),
            settings=MappingProxyType(platform),
            input_data_config=MappingProxyType(channels),
            resource_config=MappingProxyType(resources),
            entry_point=check_entry_point(str(program), "sagemaker_program / SAGEMAKER_PROGRAM")
            if program not in (None, "") else None,
            submit_dir=str(submit) if submit not in (None, "") else None,
            log_level=level,
            region=region,
            job_name=job,
            warnings=tuple(warnings),
            source_code=MappingProxyType(source_code) if source_code is not None else None,
            distributed=MappingProxyType(distributed) if distributed is not None else None,
        )

    # -- paths --------------------------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.base_dir / "input" / "config"

    @property
    def input_data_dir(self) -> Path:
        return self.base_dir / "input" / "data"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.base_dir / "output" / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        return self.base_dir / "output" / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def code_dir(self) -> Path:
        """Where code baked into the image lives (/opt/ml/code)."""
        return self.base_dir / "code"

    def channel_dir(self, name: str) -> Path:
        return self.input_data_dir / name

    # -- cluster ------------------------------------------------------------------------------

    @property
    def current_instance_type(self) -> str:
        return str(self.resource_config.get("current_instance_type", "local"))

    @property
    def current_instance_group(self) -> str:
        return str(self.resource_config.get("current_group_name", "homogeneousCluster"))

    @property
    def network_interface_name(self) -> str:
        return str(self.resource_config.get("network_interface_name", "eth0"))

    @property
    def instance_groups(self) -> list[dict[str, Any]]:
        return list(self.resource_config.get("instance_groups", []))

    @property
    def current_instance_group_hosts(self) -> list[str]:
        for group in self.instance_groups:
            if group.get("instance_group_name") == self.current_instance_group:
                return list(group.get("hosts", []))
        return []

    @property
    def distribution_instance_groups(self) -> list[str]:
        explicit = self.settings.get("sagemaker_distribution_instance_groups")
        if isinstance(explicit, list):
            return [str(g) for g in explicit]
        distributed = any(self.settings.get(key) for key in DISTRIBUTION_SWITCHES)
        return [self.current_instance_group] if distributed else []

    @property
    def distribution_hosts(self) -> list[str]:
        if not self.instance_groups:
            return self.hosts
        chosen = set(self.distribution_instance_groups)
        return [h for g in self.instance_groups if g.get("instance_group_name") in chosen
                for h in g.get("hosts", [])]

    @property
    def master_hostname(self) -> str:
        return (self.distribution_hosts or self.hosts)[0]

    def asks_for(self, launcher: str, switch: Optional[str] = None) -> bool:
        """Whether this job asks for the launcher named ``launcher``, for launcher plugins.

        TOOLKIT_LAUNCHER decides alone when set (any other value means no). Else the launcher's own
        SDK v2 hyperparameter ``switch`` (``sagemaker_mpi_enabled``...) when true; else, when no
        distribution switch is on, the SDK v3 distributed.json naming it (``_type``, or
        ``driver_script`` in older releases). The SDK names each distribution choice
        ``sagemaker_<x>_enabled`` and sets one at most: two switches on at once is an error, since
        they would ask for two engines.
        """
        explicit = (settings.read(self.environ, "TOOLKIT_LAUNCHER") or "").lower()
        if explicit:
            return explicit == launcher
        on = [key for key in (*DISTRIBUTION_SWITCHES, *sorted(self.settings)) if key.startswith("sagemaker_")
              and key.endswith("_enabled") and _enabled(self.settings.get(key), key)]
        on = list(dict.fromkeys(on))
        if len(on) > 1:
            raise ConfigError(f"both {on[0]} and {on[1]} are set: set only one, or choose the launcher with "
                              f"TOOLKIT_LAUNCHER (e.g. TOOLKIT_LAUNCHER={launcher})")
        if on:
            return on[0] == switch
        return self._distributed_launcher() == launcher

    def setting(self, name: str) -> Any:
        """The toolkit setting ``name`` (a row of the table in toolkit/settings.py, e.g.
        TOOLKIT_SSH_PORT) from this job's environment, parsed and checked; its default when unset.
        For launcher plugins."""
        return settings.read(self.environ, name)

    def _distributed_launcher(self) -> str:
        spec = self.distributed or {}
        kind = str(spec.get("_type") or "").lower()
        driver = str(spec.get("driver_script") or "").lower()
        return kind or (driver.split("_driver", 1)[0] if "_driver" in driver else "")

    def requested_launcher(self) -> str:
        """0.1's way to ask (use ``asks_for``): TOOLKIT_LAUNCHER, else the launcher distributed.json names."""
        return (settings.read(self.environ, "TOOLKIT_LAUNCHER") or "").lower() or self._distributed_launcher()

    @property
    def num_gpus(self) -> int:
        return gpu_count()

    @property
    def num_cpus(self) -> int:
        return cpu_count()

    @property
    def num_neurons(self) -> int:
        return neuron_count(self.current_instance_type)

    # -- what the user process sees -----------------------------------------------------------

    @property
    def framework_params(self) -> dict[str, Any]:
        """``sagemaker_*`` settings other than the ones the toolkit itself consumes."""
        core = {
            "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
            "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name",
            "sagemaker_s3_output",
        } | SETTING_KEYS
        # credentials for fetching code (sagemaker_git_token, ...) are not the script's business
        return {k: v for k, v in self.settings.items()
                if k not in core and not k.startswith("sagemaker_git_") and not looks_secret(k)}

    def user_args(self) -> list[str]:
        """Hyperparameters as argv, exactly as sagemaker-training builds them.

        Keys sorted; ``--key value`` (``-k value`` for one-letter keys); values as Python
        ``str()`` (so ``True``, ``0.1``, ``[1, 2]``); dict values as ``k1=v1,k2=v2``.
        """
        args: list[str] = []
        for key in sorted(self.hyperparameters):
            value = self.hyperparameters[key]
            args.append(f"--{key}" if len(key) > 1 else f"-{key}")
            if isinstance(value, dict):
                args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
            else:
                args.append("" if value is None else str(value))
        return args

    def with_changes(self, **changes: Any) -> TrainingEnv:
        """A copy with some fields replaced (the object itself never changes)."""
        from dataclasses import replace

        return replace(self, **changes)

    def settings_view(self) -> Mapping[str, str]:
        """The environment plus ``sagemaker_*`` settings (lower-case keys), for fetchers and
        installers, which serve training and serving alike."""
        merged = dict(self.environ)
        for key, value in self.settings.items():
            merged[key] = value if isinstance(value, str) else json.dumps(value)
        merged.setdefault("SAGEMAKER_REGION", self.region)
        return MappingProxyType(merged)

    def to_dict(self) -> dict[str, Any]:
        """The parsed environment as JSON-able data (``toolkit env``), secrets masked."""
        return {
            "base_dir": str(self.base_dir),
            "entry_point": self.entry_point,
            "submit_dir": mask_uri(self.submit_dir) if self.submit_dir else None,
            "job_name": self.job_name,
            "region": self.region,
            "log_level": self.log_level,
            "current_host": self.current_host,
            "hosts": self.hosts,
            "current_instance_type": self.current_instance_type,
            "current_instance_group": self.current_instance_group,
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "hyperparameters": mask(self.hyperparameters),
            "settings": mask(self.settings),
            "channels": {name: str(self.channel_dir(name)) for name in self.input_data_config},
            "input_data_config": dict(self.input_data_config),
            "resource_config": dict(self.resource_config),
            "user_args": mask_argv(self.user_args()),
            "warnings": list(self.warnings),
        }


# --- for launcher plugins ---


def positive_int(value: Any, what: str) -> Optional[int]:
    """A count from the job's settings (processes per host, nodes...): None when unset, else a
    whole number of at least 1, or a ``ConfigError`` naming ``what``. For launcher plugins."""
    if value in (None, ""):
        return None
    return int(settings.parse_number(value, f"{what} ({value!r})", whole=True, minimum=1, example=1))


# ServingEnv and ProcessingEnv are read here too, from modules of their own: building a frozen
# dataclass generates its methods (ServingEnv has 30-odd fields), about 3.5 ms that every `train`
# would pay for classes it never uses. They are imported on first use (PEP 562).
_ELSEWHERE = {"ServingEnv": "toolkit.servingenv", "ProcessingEnv": "toolkit.processingenv"}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
