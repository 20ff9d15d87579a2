"""A CreateTrainingJob request -- from JSON or from command-line options -- checked and typed.

The JSON has the structure boto3's ``create_training_job`` takes. Fields the platform accepts
but that mean nothing on one machine (RoleArn, VpcConfig, Tags...) are accepted and ignored;
a field the API does not have is an error naming the closest real one.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from toolkit.errors import ConfigError
from toolkit.local.storage import parse_location

INPUT_MODES = ("File", "Pipe", "FastFile")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DEFAULT_MAX_RUNTIME = 86400
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"
DEFAULT_INSTANCE_TYPE = "local"

# Every field of the API's shapes that the emulator reads or knowingly ignores.
FIELDS: dict[str, set[str]] = {
    "": {"TrainingJobName", "HyperParameters", "AlgorithmSpecification", "RoleArn", "InputDataConfig",
         "OutputDataConfig", "ResourceConfig", "VpcConfig", "StoppingCondition", "Tags",
         "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
         "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations", "TensorBoardOutputConfig",
         "ExperimentConfig", "ProfilerConfig", "ProfilerRuleConfigurations", "Environment", "RetryStrategy",
         "RemoteDebugConfig", "InfraCheckConfig", "SessionChainingConfig"},
    "AlgorithmSpecification": {"TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions",
                               "EnableSageMakerMetricsTimeSeries", "ContainerEntrypoint", "ContainerArguments",
                               "TrainingImageConfig"},
    "Channel": {"ChannelName", "DataSource", "ContentType", "CompressionType", "RecordWrapperType", "InputMode",
                "ShuffleConfig"},
    "DataSource": {"S3DataSource", "FileSystemDataSource"},
    "S3DataSource": {"S3DataType", "S3Uri", "S3DataDistributionType", "AttributeNames", "InstanceGroupNames"},
    "OutputDataConfig": {"KmsKeyId", "S3OutputPath", "CompressionType"},
    "ResourceConfig": {"InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId",
                       "KeepAlivePeriodInSeconds", "InstanceGroups", "TrainingPlanArn"},
    "StoppingCondition": {"MaxRuntimeInSeconds", "MaxWaitTimeInSeconds", "MaxPendingTimeInSeconds"},
    "CheckpointConfig": {"S3Uri", "LocalPath"},
    # CreateProcessingJob (toolkit/local/procrequest.py)
    "ProcessingJob": {"ProcessingJobName", "ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources",
                      "StoppingCondition", "AppSpecification", "Environment", "NetworkConfig", "RoleArn", "Tags",
                      "ExperimentConfig"},
    "AppSpecification": {"ImageUri", "ContainerEntrypoint", "ContainerArguments"},
    "ProcessingInput": {"InputName", "AppManaged", "S3Input", "DatasetDefinition"},
    "ProcessingS3Input": {"S3Uri", "LocalPath", "S3DataType", "S3InputMode", "S3DataDistributionType",
                          "S3CompressionType"},
    "ProcessingOutputConfig": {"Outputs", "KmsKeyId"},
    "ProcessingOutput": {"OutputName", "S3Output", "FeatureStoreOutput", "AppManaged"},
    "ProcessingS3Output": {"S3Uri", "LocalPath", "S3UploadMode"},
    "ProcessingResources": {"ClusterConfig"},
    "ClusterConfig": {"InstanceCount", "InstanceType", "VolumeSizeInGB", "VolumeKmsKeyId"},
    "ProcessingStoppingCondition": {"MaxRuntimeInSeconds"},
    # CreateTransformJob (toolkit/submit/transform.py)
    "TransformJob": {"TransformJobName", "ModelName", "MaxConcurrentTransforms", "ModelClientConfig",
                     "MaxPayloadInMB", "BatchStrategy", "Environment", "TransformInput", "TransformOutput",
                     "DataCaptureConfig", "TransformResources", "DataProcessing", "Tags", "ExperimentConfig"},
    "TransformInput": {"DataSource", "ContentType", "CompressionType", "SplitType"},
    "TransformOutput": {"S3OutputPath", "Accept", "AssembleWith", "KmsKeyId"},
    "TransformResources": {"InstanceType", "InstanceCount", "VolumeKmsKeyId", "TransformAmiVersion"},
}


@dataclass(frozen=True)
class InputChannel:
    """One input data channel (InputDataConfig, or a processing job's S3 input), with the request's
    defaults applied."""

    name: str
    uri: str
    mode: str
    distribution: str = "FullyReplicated"
    content_type: Optional[str] = None
    compression: str = "None"
    record_wrapper: str = "None"
    data_type: str = "S3Prefix"  # or ManifestFile (processing inputs)

    def config_entry(self) -> dict[str, str]:
        """This channel's entry in /opt/ml/input/config/inputdataconfig.json."""
        entry = {"TrainingInputMode": self.mode, "S3DistributionType": self.distribution,
                 "RecordWrapperType": self.record_wrapper}
        if self.content_type:
            entry = {"ContentType": self.content_type, **entry}
        return entry


@dataclass(frozen=True)
class TrainingRequest:
    """The parts of CreateTrainingJob the emulator acts on, plus the request itself (``raw``)."""

    job_name: str
    image: Optional[str]
    hyperparameters: Mapping[str, str]
    channels: Sequence[InputChannel]
    output_path: str
    instance_count: int
    instance_type: str
    environment: Mapping[str, str]
    max_runtime: int
    entrypoint: Sequence[str] = ()
    arguments: Sequence[str] = ()
    output_compression: str = "GZIP"
    checkpoint_uri: Optional[str] = None
    checkpoint_local_path: str = DEFAULT_CHECKPOINT_PATH
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return [f"algo-{i}" for i in range(1, self.instance_count + 1)]

    def with_hyperparameters(self, extra: Mapping[str, str]) -> TrainingRequest:
        merged = {**self.hyperparameters, **extra}
        raw = {**self.raw, "HyperParameters": merged}
        return replace(self, hyperparameters=merged, raw=raw)


# ---------------------------------------------------------------------------------------------
# Job names
# ---------------------------------------------------------------------------------------------


def base_name_from_image(image: Optional[str], default: str = "toolkit-local") -> str:
    """The SDK's default base job name: the image's repository name without registry or tag."""
    if not image:
        return default
    match = re.match(r"^(.+/)?([^:/]+)(:[^:]+)?$", image)
    return match.group(2) if match else image


def name_from_base(base: str, now: Optional[float] = None) -> str:
    """``<base>-YYYY-mm-dd-HH-MM-SS-mmm`` within 63 characters, as the SageMaker SDK makes it."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return f"{base[: 63 - len(stamp) - 1]}-{stamp}"


def check_job_name(name: str, field: str = "TrainingJobName") -> str:
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise ConfigError(
            f"{field} {name!r} is not valid: 1-63 letters, digits and hyphens, starting with a letter "
            f"or digit (e.g. my-job-1)"
        )
    return name


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def load_request_file(path: str, stdin_text: Optional[str] = None, api: str = "CreateTrainingJob") -> dict[str, Any]:
    """Read the request JSON (of the ``api`` call) from a file (or ``-`` for stdin)."""
    label = "stdin" if path == "-" else path
    try:
        text = stdin_text if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the request {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text or "")
    except ValueError as exc:
        raise ConfigError(
            f"request {label} is not valid JSON ({exc}); expected a {api} request object"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"request {label} must be a JSON object (a {api} request), "
                          f"got {type(data).__name__}")
    return data


def _check_fields(data: Any, shape: str, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'request'}: must be an object, got {type(data).__name__}")
    known = FIELDS[shape]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known fields: {', '.join(sorted(known))}"
            raise ConfigError(f"{where or 'request'}: unknown field {key!r}{hint}")
    return data


def _str_map(data: Any, where: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be an object of strings, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}.{key}: must be a string (the API takes string values only), got {json.dumps(value)}; "
                f"write it as {json.dumps(json.dumps(value))}"
            )
    return dict(data)


def _str_list(data: Any, where: str) -> list[str]:
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise ConfigError(f"{where}: must be a list of strings")
    return list(data)


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a whole number of at least 1, got {json.dumps(value)}")
    return value


def s3_uri(s3: Mapping[str, Any], where: str, other: str = "a local path") -> str:
    """``s3["S3Uri"]``, which must be there and be a location the emulator reads or writes."""
    uri = s3.get("S3Uri")
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"{where}.S3Uri: missing; expected s3://bucket/prefix, file:///path or {other}")
    parse_location(uri, f"{where}.S3Uri")
    return uri


def _channel(spec: Any, index: int, default_mode: str) -> InputChannel:
    where = f"InputDataConfig[{index}]"
    spec = _check_fields(spec, "Channel", where)
    name = spec.get("ChannelName")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9\.\-_]+$", name or ""):
        raise ConfigError(f"{where}.ChannelName: missing or invalid; letters, digits, '.', '-', '_' (e.g. train)")
    where = f"InputDataConfig[{index}] ({name})"
    source = _check_fields(spec.get("DataSource"), "DataSource", f"{where}.DataSource")
    if "FileSystemDataSource" in source:
        raise ConfigError(f"{where}: FileSystemDataSource (EFS/FSx) is not emulated; copy the data to S3 or a "
                          f"local folder and use S3DataSource")
    s3 = _check_fields(source.get("S3DataSource"), "S3DataSource", f"{where}.DataSource.S3DataSource")
    uri = s3_uri(s3, f"{where}.DataSource.S3DataSource")
    data_type = s3.get("S3DataType", "S3Prefix")
    if data_type != "S3Prefix":
        raise ConfigError(f"{where}: S3DataType {data_type!r} is not emulated; use S3Prefix")
    mode = _choice(spec.get("InputMode") or default_mode, INPUT_MODES, f"{where}.InputMode")
    compression = _choice(spec.get("CompressionType", "None"), ("None", "Gzip"), f"{where}.CompressionType")
    wrapper = _choice(spec.get("RecordWrapperType", "None"), ("None", "RecordIO"), f"{where}.RecordWrapperType")
    if compression != "None" or wrapper != "None":
        raise ConfigError(f"{where}: CompressionType Gzip and RecordWrapperType RecordIO are not emulated; "
                          f"use None")
    return InputChannel(
        name=name, uri=uri, mode=mode,
        distribution=_choice(s3.get("S3DataDistributionType", "FullyReplicated"), DISTRIBUTIONS,
                             f"{where}.DataSource.S3DataSource.S3DataDistributionType"),
        content_type=spec.get("ContentType"), compression=compression, record_wrapper=wrapper,
    )


def parse_request(data: Mapping[str, Any]) -> TrainingRequest:
    """Check a CreateTrainingJob request and return what the emulator needs from it."""
    data = _check_fields(dict(data), "", "")
    name = check_job_name(data.get("TrainingJobName", ""))
    algo = _check_fields(data.get("AlgorithmSpecification") or {}, "AlgorithmSpecification",
                         "AlgorithmSpecification")
    if algo.get("AlgorithmName"):
        raise ConfigError("AlgorithmSpecification.AlgorithmName: built-in and marketplace algorithms are not "
                          "emulated; give a TrainingImage (or none, to run this machine's train)")
    default_mode = _choice(algo.get("TrainingInputMode", "File"), INPUT_MODES,
                           "AlgorithmSpecification.TrainingInputMode")
    channels_raw = data.get("InputDataConfig") or []
    if not isinstance(channels_raw, list):
        raise ConfigError("InputDataConfig: must be a list of channels")
    channels = [_channel(spec, i, default_mode) for i, spec in enumerate(channels_raw)]
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        raise ConfigError(f"InputDataConfig: channel names must be unique, got {names}")
    output = _check_fields(data.get("OutputDataConfig") or {}, "OutputDataConfig", "OutputDataConfig")
    output_path = output.get("S3OutputPath")
    if not isinstance(output_path, str) or not output_path:
        raise ConfigError("OutputDataConfig.S3OutputPath: missing; where the model goes, e.g. s3://bucket/output "
                          "or a local folder")
    parse_location(output_path, "OutputDataConfig.S3OutputPath")
    resources = _check_fields(data.get("ResourceConfig") or {}, "ResourceConfig", "ResourceConfig")
    if resources.get("InstanceGroups"):
        raise ConfigError("ResourceConfig.InstanceGroups: heterogeneous clusters are not emulated; "
                          "use InstanceCount and InstanceType")
    stopping = _check_fields(data.get("StoppingCondition") or {}, "StoppingCondition", "StoppingCondition")
    checkpoint = _check_fields(data.get("CheckpointConfig") or {}, "CheckpointConfig", "CheckpointConfig")
    if checkpoint and not checkpoint.get("S3Uri"):
        raise ConfigError("CheckpointConfig.S3Uri: missing; where checkpoints are kept, e.g. s3://bucket/checkpoints")
    if checkpoint:
        parse_location(checkpoint["S3Uri"], "CheckpointConfig.S3Uri")
    local_path = checkpoint.get("LocalPath", DEFAULT_CHECKPOINT_PATH)
    if not isinstance(local_path, str) or not local_path.startswith("/"):
        raise ConfigError(f"CheckpointConfig.LocalPath: {local_path!r} must be an absolute path such as "
                          f"{DEFAULT_CHECKPOINT_PATH}")
    return TrainingRequest(
        job_name=name,
        image=algo.get("TrainingImage") or None,
        hyperparameters=_str_map(data.get("HyperParameters"), "HyperParameters"),
        channels=channels,
        output_path=output_path,
        output_compression=_choice(output.get("CompressionType", "GZIP"), ("GZIP", "NONE"),
                                   "OutputDataConfig.CompressionType"),
        instance_count=_positive_int(resources.get("InstanceCount", 1), "ResourceConfig.InstanceCount"),
        instance_type=str(resources.get("InstanceType") or DEFAULT_INSTANCE_TYPE),
        environment=_str_map(data.get("Environment"), "Environment"),
        max_runtime=_positive_int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME),
                                  "StoppingCondition.MaxRuntimeInSeconds"),
        entrypoint=_str_list(algo.get("ContainerEntrypoint"), "AlgorithmSpecification.ContainerEntrypoint"),
        arguments=_str_list(algo.get("ContainerArguments"), "AlgorithmSpecification.ContainerArguments"),
        checkpoint_uri=checkpoint.get("S3Uri") or None,
        checkpoint_local_path=local_path,
        raw=data,
    )


# ---------------------------------------------------------------------------------------------
# Command-line options on top of a request
# ---------------------------------------------------------------------------------------------


def key_value(text: str, what: str) -> tuple[str, str]:
    """``name=value`` from an option; the value may itself contain '='.

    The example in the message is built from what was typed, so ``--channel train`` suggests
    ``--channel train=s3://...``, not an unrelated name.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        name = key or "NAME"
        if what == "--channel":
            raise ConfigError(f"{what} {text!r}: expected NAME=URI, e.g. {what} {name}=s3://bucket/prefix "
                              f"or {what} {name}=./folder")
        raise ConfigError(f"{what} {text!r}: expected NAME=VALUE, e.g. {what} {name}=VALUE")
    return key, value


@dataclass
class JobOverrides:
    """The options ``toolkit local train`` and ``process`` share; each one that is set replaces (or
    adds to) the request's field."""

    job_name: Optional[str] = None
    base_job_name: Optional[str] = None
    image: Optional[str] = None
    input_mode: Optional[str] = None
    distribution: Optional[str] = None
    environment: Sequence[str] = ()
    instance_count: Optional[int] = None
    instance_type: Optional[str] = None
    max_run: Optional[int] = None
    arguments: Sequence[str] = ()

    def copy(self, data: Mapping[str, Any], section: str, image_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A deep copy of the request (JSON-able) and its ``section`` object (made when missing),
        with --image set in it as ``image_key``."""
        out: dict[str, Any] = json.loads(json.dumps(dict(data)))
        spec = out.setdefault(section, {})
        if not isinstance(spec, dict):
            raise ConfigError(f"{section}: must be an object")
        if self.image:
            spec[image_key] = self.image
        return out, spec

    def name_job(self, out: dict[str, Any], key: str, image: Optional[str], now: Optional[float]) -> None:
        """``out[key]``: --job-name, else the request's, else one made as the SDK makes it."""
        if self.job_name:
            out[key] = self.job_name
        elif not out.get(key):
            out[key] = name_from_base(self.base_job_name or base_name_from_image(image), now)

    def apply_shared(self, out: dict[str, Any], resources: dict[str, Any]) -> None:
        """--environment, --instance-count/-type (into ``resources``) and --max-run."""
        if self.environment:
            env = out.setdefault("Environment", {})
            for text in self.environment:
                key, value = key_value(text, "--environment")
                env[key] = value
        if self.instance_count is not None:
            resources["InstanceCount"] = self.instance_count
        if self.instance_type:
            resources["InstanceType"] = self.instance_type
        resources.setdefault("InstanceCount", 1)
        resources.setdefault("InstanceType", DEFAULT_INSTANCE_TYPE)
        if self.max_run is not None:
            out.setdefault("StoppingCondition", {})["MaxRuntimeInSeconds"] = self.max_run


@dataclass
class Overrides(JobOverrides):
    """``toolkit local train`` options (and ``toolkit submit train``'s)."""

    channels: Sequence[str] = ()
    hyperparameters: Sequence[str] = ()
    output_path: Optional[str] = None
    checkpoint_uri: Optional[str] = None
    checkpoint_local_path: Optional[str] = None
    entrypoint: Sequence[str] = ()
    json_hyperparameters: bool = False  # encode --hyperparameter values as the SDK v2 does with a source_dir


def sdk_encoded(text: str) -> str:
    """A ``--hyperparameter`` value as the SDK v2 sends it for an estimator with a ``source_dir``:
    ``json.dumps`` of the value the user would have written in Python (``3`` -> ``3``,
    ``[4, 2]`` -> ``[4, 2]``, ``adam`` -> ``"adam"``)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return json.dumps(value)


def apply_overrides(data: Mapping[str, Any], opts: Overrides, default_output: str,
                    now: Optional[float] = None) -> dict[str, Any]:
    """The request with the options applied, a job name, and an output path."""
    out, algo = opts.copy(data, "AlgorithmSpecification", "TrainingImage")
    if opts.input_mode:
        algo["TrainingInputMode"] = opts.input_mode
    else:
        algo.setdefault("TrainingInputMode", "File")
    if opts.entrypoint:
        algo["ContainerEntrypoint"] = list(opts.entrypoint)
    if opts.arguments:
        algo["ContainerArguments"] = list(opts.arguments)
    if opts.hyperparameters:
        hps = out.setdefault("HyperParameters", {})
        for text in opts.hyperparameters:
            key, value = key_value(text, "--hyperparameter")
            hps[key] = sdk_encoded(value) if opts.json_hyperparameters else value
    if opts.channels:
        channels = out.setdefault("InputDataConfig", [])
        for text in opts.channels:
            name, uri = key_value(text, "--channel")
            channels[:] = [c for c in channels if not (isinstance(c, dict) and c.get("ChannelName") == name)]
            spec: dict[str, Any] = {"ChannelName": name, "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri,
                "S3DataDistributionType": opts.distribution or "FullyReplicated"}}}
            channels.append(spec)
    if opts.output_path or "OutputDataConfig" not in out:
        out.setdefault("OutputDataConfig", {})["S3OutputPath"] = opts.output_path or default_output
    opts.apply_shared(out, out.setdefault("ResourceConfig", {}))
    out.setdefault("StoppingCondition", {}).setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    if opts.checkpoint_uri:
        out.setdefault("CheckpointConfig", {})["S3Uri"] = opts.checkpoint_uri
    if opts.checkpoint_local_path:
        out.setdefault("CheckpointConfig", {})["LocalPath"] = opts.checkpoint_local_path
    opts.name_job(out, "TrainingJobName", algo.get("TrainingImage"), now)
    return out
