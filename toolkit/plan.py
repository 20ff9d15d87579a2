"""Where every file of a job lands in S3: the one source of truth for ``toolkit local`` and ``toolkit submit``.

The location rules are SageMaker's (and the SDK v2's, for what the SDK decides):

- source: ``<code location or the output bucket's root>/<job>/source/sourcedir.tar.gz``;
- training results: ``<output path>/<job>/output/model.tar.gz`` and ``.../output.tar.gz``
  (``.../output/model/`` with CompressionType NONE); intermediate output under
  ``<sagemaker_s3_output>/<job>/output/intermediate/``; Debugger and profiler data under
  ``<their S3OutputPath>/<job>/debug-output/`` and ``.../profiler-output/``;
- processing: a ScriptProcessor's code at ``<bucket>/<job>/input/code/<file>``, a local input
  uploaded to ``<bucket>/<job>/input/<name>/``, an output without a destination at
  ``<bucket>/<job>/output/<name>/``;
- transform: each input file's answers at ``<output path>/<file>.out`` (no job name in the path).

A plan lists these locations for one job, each read or written, before anything moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from toolkit.local.storage import Location, parse_location

if TYPE_CHECKING:
    from toolkit.local.procrequest import ProcessingRequest
    from toolkit.local.request import TrainingRequest

SOURCE_ARCHIVE = "sourcedir.tar.gz"
CODE_INPUT = "code"
CODE_FOLDER = "/opt/ml/processing/input/code"


@dataclass(frozen=True)
class Place:
    """One location of a job: what it is, its URI, and whether the job reads or writes it."""

    what: str
    uri: str
    access: str  # "read", "write" or "read+write"


# ---------------------------------------------------------------------------------------------
# Location rules
# ---------------------------------------------------------------------------------------------


def bucket_root(uri: str, what: str = "output path") -> Location:
    """``s3://bucket`` of an S3 URI; a local location stays itself (the emulator's folders)."""
    loc = parse_location(uri, what)
    return Location(f"s3://{loc.bucket}", bucket=loc.bucket) if loc.is_s3 else loc


def source_archive(job_name: str, output_path: str, code_location: Optional[str]) -> Location:
    """``code_location/<job>/source/sourcedir.tar.gz``; without a code location, the output bucket's root."""
    base = parse_location(code_location, "--code-location") if code_location else bucket_root(output_path)
    return base.join(job_name, "source", SOURCE_ARCHIVE)


def training_output(output_path: str, job_name: str) -> Location:
    """``<output path>/<job>/output``: where model.tar.gz and output.tar.gz go."""
    return parse_location(output_path, "OutputDataConfig.S3OutputPath").join(job_name, "output")


def model_artifact(output_path: str, job_name: str, compression: str = "GZIP") -> Location:
    out = training_output(output_path, job_name)
    return out.join("model") if compression == "NONE" else out.join("model.tar.gz")


def output_artifact(output_path: str, job_name: str) -> Location:
    return training_output(output_path, job_name).join("output.tar.gz")


def intermediate_output(s3_output: str, job_name: str) -> Location:
    return parse_location(s3_output, "sagemaker_s3_output").join(job_name, "output", "intermediate")


def processing_default_output(base: str, job_name: str, name: str) -> Location:
    """Where an output that names no destination goes: ``<base>/<job>/output/<name>``."""
    return parse_location(base, "--output-path").join(job_name, "output", name)


def processing_upload(base: str, job_name: str, input_name: str) -> Location:
    """Where the SDK uploads a local input (and a ScriptProcessor's code): ``<base>/<job>/input/<name>``."""
    return parse_location(base, "bucket").join(job_name, "input", input_name)


def transform_default_output(base: str, job_name: str) -> Location:
    """The Transformer's output path when none is given: ``<bucket>/<job>``."""
    return parse_location(base, "bucket").join(job_name)


def transform_output(output: Location, file_name: str) -> Location:
    """``<output path>/<input file, relative to the input prefix>.out``."""
    return output.join(*f"{file_name}.out".split("/"))


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def _decoded(value: str) -> str:
    """A hyperparameter as the SDK JSON-encodes it (``"\\"s3://...\\""``), or plain."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def training_plan(request: TrainingRequest) -> list[Place]:
    """Every location a training job reads or writes."""
    hps = request.hyperparameters
    places = []
    if "sagemaker_submit_directory" in hps:
        places.append(Place("source", _decoded(hps["sagemaker_submit_directory"]), "read"))
    places += [Place(f"channel {c.name}", c.uri, "read") for c in request.channels]
    if request.checkpoint_uri:
        places.append(Place("checkpoints", request.checkpoint_uri, "read+write"))
    model = model_artifact(request.output_path, request.job_name, request.output_compression)
    places.append(Place("model", model.uri + ("/" if request.output_compression == "NONE" else ""), "write"))
    places.append(Place("output data", output_artifact(request.output_path, request.job_name).uri, "write"))
    if "sagemaker_s3_output" in hps:
        inter = intermediate_output(_decoded(hps["sagemaker_s3_output"]), request.job_name)
        places.append(Place("intermediate output", inter.uri + "/", "write"))
    for field, what, folder in (("DebugHookConfig", "debugger data", "debug-output"),
                                ("ProfilerConfig", "profiler data", "profiler-output")):
        config = request.raw.get(field) or {}
        if isinstance(config, dict) and config.get("S3OutputPath") and not config.get("DisableProfiler"):
            base = parse_location(config["S3OutputPath"], f"{field}.S3OutputPath")
            places.append(Place(what, base.join(request.job_name, folder).uri + "/", "write"))
    return places


def processing_plan(request: ProcessingRequest) -> list[Place]:
    """Every location a processing job reads or writes."""
    places = [Place(f"input {i.name} -> {i.local_path}", i.channel.uri, "read") for i in request.inputs]
    places += [Place(f"output {o.name} <- {o.local_path} ({o.upload_mode})", o.uri, "write")
               for o in request.outputs]
    return places


def transform_plan(model: str, input_uri: str, output_path: str, names: Sequence[str] = ()) -> list[Place]:
    """A transform job's model, input and outputs (one per input file when ``names`` are known)."""
    output = parse_location(output_path, "--output-path")
    places = [Place("model", model, "read"), Place("input", input_uri, "read")]
    if names:
        places += [Place(f"answers to {name}", transform_output(output, name).uri, "write") for name in names]
    else:
        places.append(Place("answers", transform_output(output, "<input file>").uri, "write"))
    return places


def format_plan(places: Sequence[Place]) -> list[str]:
    """Aligned lines: access, what, URI."""
    width = max((len(p.what) for p in places), default=0)
    return [f"  {p.access:<10} {p.what:<{width}}  {p.uri}" for p in places]
