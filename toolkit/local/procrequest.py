"""A CreateProcessingJob request -- from JSON or from command-line options -- checked and typed.

The JSON has the structure boto3's ``create_processing_job`` takes; unknown fields are refused
naming the closest real one, as for training (toolkit/local/request.py holds the field tables and
the checks both use).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from toolkit import plan
from toolkit.errors import ConfigError
from toolkit.local.request import (
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_RUNTIME,
    DISTRIBUTIONS,
    InputChannel,
    JobOverrides,
    _check_fields,
    _choice,
    _positive_int,
    _str_list,
    _str_map,
    check_job_name,
    key_value,
    s3_uri,
)

PROCESSING_BASE = "/opt/ml/processing"
UPLOAD_MODES = ("EndOfJob", "Continuous")


@dataclass(frozen=True)
class ProcessingInput:
    """One S3 input: where it comes from and where the job reads it (``LocalPath``)."""

    channel: InputChannel  # the training emulator's channel: name, URI, mode, distribution, compression, data type
    local_path: str

    @property
    def name(self) -> str:
        return self.channel.name


@dataclass(frozen=True)
class ProcessingOutput:
    name: str
    uri: str
    local_path: str
    upload_mode: str = "EndOfJob"


@dataclass(frozen=True)
class ProcessingRequest:
    """The parts of CreateProcessingJob the emulator acts on, plus the request itself (``raw``)."""

    job_name: str
    image: Optional[str]
    entrypoint: Sequence[str]
    arguments: Sequence[str]
    environment: Mapping[str, str]
    inputs: Sequence[ProcessingInput]
    outputs: Sequence[ProcessingOutput]
    instance_count: int = 1
    instance_type: str = DEFAULT_INSTANCE_TYPE
    max_runtime: int = DEFAULT_MAX_RUNTIME
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return [f"algo-{i}" for i in range(1, self.instance_count + 1)]


def _local_path(value: Any, where: str) -> str:
    """A LocalPath under /opt/ml/processing (the API's rule), normalised."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.LocalPath: missing; a folder under {PROCESSING_BASE}/, e.g. "
                          f"{PROCESSING_BASE}/input/data")
    norm = posixpath.normpath(value)
    if not norm.startswith(PROCESSING_BASE + "/"):
        raise ConfigError(f"{where}.LocalPath: {value!r} is outside {PROCESSING_BASE}; the platform only mounts "
                          f"folders under {PROCESSING_BASE}/ (e.g. {PROCESSING_BASE}/output/train)")
    return norm


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{what} {value!r} is used twice; each must be unique")
        seen.add(value)


def _named(spec: Any, shape: str, where: str, example: str) -> tuple[dict[str, Any], str]:
    """An input's or output's fields checked, and its name (``InputName``/``OutputName``)."""
    spec = _check_fields(spec, shape, where)
    key = f"{shape.removeprefix('Processing')}Name"
    name = spec.get(key)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.{key}: missing (e.g. {example})")
    return spec, name


def _input(spec: Any, index: int) -> ProcessingInput:
    spec, name = _named(spec, "ProcessingInput", f"ProcessingInputs[{index}]", "raw-data")
    where = f"ProcessingInputs[{index}] ({name})"
    if "DatasetDefinition" in spec:
        raise ConfigError(f"{where}: DatasetDefinition (Athena, Redshift) is not emulated; export the data to S3 or "
                          f"a local folder and use S3Input")
    s3 = _check_fields(spec.get("S3Input"), "ProcessingS3Input", f"{where}.S3Input")
    uri = s3_uri(s3, f"{where}.S3Input")
    mode = _choice(s3.get("S3InputMode", "File"), ("File", "Pipe"), f"{where}.S3Input.S3InputMode")
    compression = _choice(s3.get("S3CompressionType", "None"), ("None", "Gzip"), f"{where}.S3Input.S3CompressionType")
    if compression == "Gzip" and mode != "Pipe":
        raise ConfigError(f"{where}.S3Input: S3CompressionType Gzip needs S3InputMode Pipe (the platform refuses it "
                          f"in File mode)")
    channel = InputChannel(
        name=name, uri=uri, mode=mode, compression=compression,
        distribution=_choice(s3.get("S3DataDistributionType", "FullyReplicated"), DISTRIBUTIONS,
                             f"{where}.S3Input.S3DataDistributionType"),
        data_type=_choice(s3.get("S3DataType", "S3Prefix"), ("S3Prefix", "ManifestFile"),
                          f"{where}.S3Input.S3DataType"),
    )
    return ProcessingInput(channel, _local_path(s3.get("LocalPath"), f"{where}.S3Input"))


def _output(spec: Any, index: int) -> ProcessingOutput:
    where = f"ProcessingOutputConfig.Outputs[{index}]"
    spec, name = _named(spec, "ProcessingOutput", where, "train")
    where = f"{where} ({name})"
    if "FeatureStoreOutput" in spec:
        raise ConfigError(f"{where}: FeatureStoreOutput is not emulated; use S3Output")
    s3 = _check_fields(spec.get("S3Output"), "ProcessingS3Output", f"{where}.S3Output")
    uri = s3_uri(s3, f"{where}.S3Output", "a folder")
    mode = _choice(s3.get("S3UploadMode", "EndOfJob"), UPLOAD_MODES, f"{where}.S3Output.S3UploadMode")
    return ProcessingOutput(name, uri, _local_path(s3.get("LocalPath"), f"{where}.S3Output"), mode)


def parse_processing_request(data: Mapping[str, Any]) -> ProcessingRequest:
    """Check a CreateProcessingJob request and return what the emulator needs from it."""
    data = _check_fields(dict(data), "ProcessingJob", "")
    name = check_job_name(data.get("ProcessingJobName", ""), "ProcessingJobName")
    app = _check_fields(data.get("AppSpecification") or {}, "AppSpecification", "AppSpecification")
    raw_inputs = data.get("ProcessingInputs") or []
    if not isinstance(raw_inputs, list):
        raise ConfigError("ProcessingInputs: must be a list of inputs")
    inputs = [_input(spec, i) for i, spec in enumerate(raw_inputs)]
    output_config = _check_fields(data.get("ProcessingOutputConfig") or {}, "ProcessingOutputConfig",
                                  "ProcessingOutputConfig")
    raw_outputs = output_config.get("Outputs") or []
    if not isinstance(raw_outputs, list):
        raise ConfigError("ProcessingOutputConfig.Outputs: must be a list of outputs")
    outputs = [_output(spec, i) for i, spec in enumerate(raw_outputs)]
    _unique([i.name for i in inputs], "ProcessingInputs: InputName")
    _unique([i.local_path for i in inputs], "ProcessingInputs: LocalPath")
    _unique([o.name for o in outputs], "ProcessingOutputConfig.Outputs: OutputName")
    resources = _check_fields(data.get("ProcessingResources") or {}, "ProcessingResources", "ProcessingResources")
    cluster = _check_fields(resources.get("ClusterConfig") or {}, "ClusterConfig", "ProcessingResources.ClusterConfig")
    stopping = _check_fields(data.get("StoppingCondition") or {}, "ProcessingStoppingCondition", "StoppingCondition")
    entrypoint = _str_list(app.get("ContainerEntrypoint"), "AppSpecification.ContainerEntrypoint")
    arguments = _str_list(app.get("ContainerArguments"), "AppSpecification.ContainerArguments")
    if not entrypoint and not arguments:
        raise ConfigError("AppSpecification.ContainerEntrypoint: missing; what the container runs, e.g. "
                          '["process", "/opt/ml/processing/input/code/prep.py"]')
    return ProcessingRequest(
        job_name=name,
        image=app.get("ImageUri") or None,
        entrypoint=entrypoint,
        arguments=arguments,
        environment=_str_map(data.get("Environment"), "Environment"),
        inputs=inputs,
        outputs=outputs,
        instance_count=_positive_int(cluster.get("InstanceCount", 1),
                                     "ProcessingResources.ClusterConfig.InstanceCount"),
        instance_type=str(cluster.get("InstanceType") or DEFAULT_INSTANCE_TYPE),
        max_runtime=_positive_int(stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME),
                                  "StoppingCondition.MaxRuntimeInSeconds"),
        raw=data,
    )


# ---------------------------------------------------------------------------------------------
# Command-line options on top of a request
# ---------------------------------------------------------------------------------------------


@dataclass
class ProcessOverrides(JobOverrides):
    """``toolkit local process`` options (and ``toolkit submit process``'s)."""

    inputs: Sequence[str] = ()
    outputs: Sequence[str] = ()
    output_mode: Optional[str] = None
    command: Sequence[str] = ()
    code: Optional[str] = None  # a ScriptProcessor's code: one script, run as command + its path


def _add_code(out: dict[str, Any], app: dict[str, Any], opts: ProcessOverrides) -> None:
    """As a ScriptProcessor's ``run(code=...)``: the script is the input ``code`` at
    /opt/ml/processing/input/code, and the command (``process`` unless given) runs it with the arguments."""
    assert opts.code is not None
    script = posixpath.basename(opts.code.rstrip("/").split("://", 1)[-1])
    s3 = {"S3Uri": opts.code, "LocalPath": plan.CODE_FOLDER, "S3DataType": "S3Prefix", "S3InputMode": "File",
          "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}
    inputs = out.setdefault("ProcessingInputs", [])
    inputs[:] = [i for i in inputs if not (isinstance(i, dict) and i.get("InputName") == plan.CODE_INPUT)]
    inputs.append({"InputName": plan.CODE_INPUT, "AppManaged": False, "S3Input": s3})
    app["ContainerEntrypoint"] = [*(opts.command or ["process"]), f"{plan.CODE_FOLDER}/{script}"]
    if opts.arguments:
        app["ContainerArguments"] = list(opts.arguments)


def apply_process_overrides(data: Mapping[str, Any], opts: ProcessOverrides, output_path: str,
                            now: Optional[float] = None) -> dict[str, Any]:
    """The request with the options applied and a job name."""
    out, app = opts.copy(data, "AppSpecification", "ImageUri")
    if opts.command and not opts.code:
        app["ContainerEntrypoint"] = list(opts.command)
    opts.name_job(out, "ProcessingJobName", app.get("ImageUri"), now)
    job = str(out["ProcessingJobName"])
    for text in opts.inputs:
        name, uri = key_value(text, "--input")
        s3 = {"S3Uri": uri, "LocalPath": f"{PROCESSING_BASE}/input/{name}", "S3DataType": "S3Prefix",
              "S3InputMode": opts.input_mode or "File",
              "S3DataDistributionType": opts.distribution or "FullyReplicated", "S3CompressionType": "None"}
        inputs = out.setdefault("ProcessingInputs", [])
        inputs[:] = [i for i in inputs if not (isinstance(i, dict) and i.get("InputName") == name)]
        inputs.append({"InputName": name, "AppManaged": False, "S3Input": s3})
    for text in opts.outputs:
        name, _, uri = text.partition("=")
        if not name:
            raise ConfigError(f"--output {text!r}: expected NAME or NAME=URI (e.g. --output train=s3://bucket/train)")
        uri = uri or plan.processing_default_output(output_path, job, name).uri
        s3 = {"S3Uri": uri, "LocalPath": f"{PROCESSING_BASE}/output/{name}",
              "S3UploadMode": opts.output_mode or "EndOfJob"}
        config = out.setdefault("ProcessingOutputConfig", {})
        outputs = config.setdefault("Outputs", []) if isinstance(config, dict) else []
        outputs[:] = [o for o in outputs if not (isinstance(o, dict) and o.get("OutputName") == name)]
        outputs.append({"OutputName": name, "AppManaged": False, "S3Output": s3})
    if opts.code:
        _add_code(out, app, opts)
    opts.apply_shared(out, out.setdefault("ProcessingResources", {}).setdefault("ClusterConfig", {}))
    return out
