"""CreateTrainingJob as the SDK v2 Estimator (``image_uri``, ``entry_point``, ``source_dir``) sends it.

Built by the emulator's request model (the same options and JSON as ``toolkit local train``), then
given what the SDK adds: RoleArn, ``VolumeSizeInGB`` 30, the ``sagemaker_*`` hyperparameters, and the
Debugger hook and profiler configurations it turns on by default where the region has them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from toolkit.local.request import Overrides, apply_overrides, parse_request
from toolkit.local.source import plan_source
from toolkit.plan import training_plan
from toolkit.submit.kinds import KINDS, Submission
from toolkit.submit.target import Target, check_role, check_service_values

# sagemaker.fw_utils DEBUGGER_UNSUPPORTED_REGIONS (the same list for the profiler)
NO_DEBUGGER_REGIONS = ("us-iso-east-1", "us-isob-east-1", "ap-southeast-3", "ap-southeast-4", "eu-south-2",
                       "me-central-1", "ap-south-2", "eu-central-2", "us-gov-east-1")


def _sdk_monitoring(request: dict[str, Any], region: str, output_path: str) -> None:
    """The DebugHookConfig and ProfilerConfig an Estimator sends when the user sets neither."""
    if region.lower() in NO_DEBUGGER_REGIONS:
        request.setdefault("ProfilerConfig", {"DisableProfiler": True})
        return
    request.setdefault("DebugHookConfig", {"S3OutputPath": output_path, "CollectionConfigurations": []})
    instance_type = str(request.get("ResourceConfig", {}).get("InstanceType", ""))
    if re.match(r"^ml[._]trn", instance_type):  # the SDK turns the profiler off on Trainium
        request.setdefault("ProfilerConfig", {"DisableProfiler": True})
    else:
        request.setdefault("ProfilerConfig", {"S3OutputPath": output_path, "DisableProfiler": False})


def training_submission(data: Mapping[str, Any], overrides: Overrides, target: Target, *, entry_point: Optional[str],
                        source_dir: Optional[str], code_location: Optional[str], log_level: int) -> Submission:
    """Check everything and decide every location; nothing is uploaded or sent here."""
    overrides.json_hyperparameters = bool(source_dir)  # the SDK encodes only with a source_dir
    out = apply_overrides(data, overrides, default_output=target.root + "/")
    check_role(out, target)
    out.setdefault("ResourceConfig", {}).setdefault("VolumeSizeInGB", target.volume_size)
    packaged = None
    if entry_point or source_dir:
        packaged = plan_source(job_name=str(out["TrainingJobName"]), entry_point=entry_point or "",
                               source_dir=source_dir, output_path=str(out["OutputDataConfig"]["S3OutputPath"]),
                               code_location=code_location, region=target.region, log_level=log_level)
        out["HyperParameters"] = {**out.get("HyperParameters", {}), **packaged.hyperparameters}
    request = parse_request(out)
    uris = {"OutputDataConfig.S3OutputPath": request.output_path}
    uris.update({f"channel {c.name}": c.uri for c in request.channels})
    if request.checkpoint_uri:
        uris["CheckpointConfig.S3Uri"] = request.checkpoint_uri
    if packaged is not None:
        uris["--code-location" if code_location else "source"] = packaged.submit_uri
    check_service_values(request.image, request.instance_type, uris)
    _sdk_monitoring(out, target.region, request.output_path)
    request = parse_request(out)
    extra: dict[str, str] = {}
    if packaged is not None and packaged.uploaded:
        extra = {"ServerSideEncryption": "aws:kms", **target.owner_args(packaged.submit_uri.split("/")[2])}
    return Submission(KINDS["training"], dict(request.raw), training_plan(request), source=packaged,
                      source_extra_args=extra)
