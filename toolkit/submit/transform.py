"""CreateTransformJob as the SDK v2 Transformer sends it, from ``toolkit local transform``'s options.

``--model`` names a SageMaker model (the Transformer's ``model_name``: the job's base name comes from
its image, as the SDK reads it with DescribeModel), or is an ``s3://.../model.tar.gz`` that becomes a
model first (CreateModel with ``--image``, named as the SDK names a Model). The output path defaults
to ``s3://<bucket>/<job>``, and each input file's answers land at ``<output path>/<file>.out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from toolkit import plan
from toolkit.errors import ConfigError
from toolkit.local.request import (
    _check_fields,
    base_name_from_image,
    check_job_name,
    key_value,
    name_from_base,
)
from toolkit.local.storage import parse_location
from toolkit.local.transform import TransformSettings
from toolkit.submit.account import Account
from toolkit.submit.kinds import KINDS, Submission
from toolkit.submit.target import Target, check_instance_and_uris, check_role


@dataclass
class TransformOptions:
    """``toolkit submit transform``'s options; each one that is set replaces the request's field."""

    settings: TransformSettings  # toolkit local transform's: content type, split, batching...
    model: Optional[str] = None
    image: Optional[str] = None
    input_uri: Optional[str] = None
    output_path: Optional[str] = None
    environment: Sequence[str] = ()
    job_name: Optional[str] = None
    base_job_name: Optional[str] = None
    instance_count: Optional[int] = None
    instance_type: Optional[str] = None


def _model(out: dict[str, Any], opts: TransformOptions, target: Target, account: Account) -> tuple[
        Optional[dict[str, Any]], Optional[str]]:
    """(CreateModel request or None, the model's image) for ``--model``."""
    if opts.model and opts.model.startswith("s3://"):
        if not opts.image:
            raise ConfigError("--model s3://...model.tar.gz needs --image (the serving image the model runs in)")
        role = {"RoleArn": target.role}
        check_role(role, target)
        name = name_from_base(base_name_from_image(opts.image))
        out["ModelName"] = name
        return {"ModelName": name, "ExecutionRoleArn": role["RoleArn"],
                "PrimaryContainer": {"Image": opts.image, "Environment": {}, "ModelDataUrl": opts.model}}, opts.image
    if opts.model:
        out["ModelName"] = opts.model
    if not out.get("ModelName"):
        raise ConfigError("--model is required: a SageMaker model name, or s3://.../model.tar.gz with --image")
    if opts.job_name or out.get("TransformJobName") or opts.base_job_name:
        return None, None
    answer = account.call("sagemaker", "describe_model", ModelName=out["ModelName"])  # as the Transformer does
    container = answer.get("PrimaryContainer") or (answer.get("Containers") or [{}])[0]
    return None, container.get("Image")


def transform_submission(data: Mapping[str, Any], opts: TransformOptions, target: Target,
                         account: Account) -> Submission:
    """Check everything and decide every location; nothing is sent here (but DescribeModel)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(data)))
    _check_fields(out, "TransformJob", "")
    model_request, image = _model(out, opts, target, account)
    if opts.job_name:
        out["TransformJobName"] = opts.job_name
    elif not out.get("TransformJobName"):
        base = opts.base_job_name or (base_name_from_image(image) if image else str(out["ModelName"]))
        out["TransformJobName"] = name_from_base(base)
    job = check_job_name(str(out["TransformJobName"]), "TransformJobName")
    given = _check_fields(out.setdefault("TransformInput", {}), "TransformInput", "TransformInput")
    if opts.input_uri:
        given["DataSource"] = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": opts.input_uri}}
    settings = opts.settings
    for key, value in (("ContentType", settings.content_type), ("SplitType", settings.split_type)):
        if value and value != "None":
            given[key] = value
    output = _check_fields(out.setdefault("TransformOutput", {}), "TransformOutput", "TransformOutput")
    if opts.output_path or not output.get("S3OutputPath"):
        output["S3OutputPath"] = opts.output_path or plan.transform_default_output(target.root, job).uri
    for key, value in (("Accept", settings.accept), ("AssembleWith", settings.assemble_with)):
        if value and value != "None":
            output[key] = value
    resources = _check_fields(out.setdefault("TransformResources", {}), "TransformResources", "TransformResources")
    if opts.instance_count is not None or "InstanceCount" not in resources:
        resources["InstanceCount"] = opts.instance_count or 1
    if opts.instance_type:
        resources["InstanceType"] = opts.instance_type
    for key, value in (("BatchStrategy", settings.batch_strategy), ("MaxPayloadInMB", settings.max_payload_mb),
                       ("MaxConcurrentTransforms", settings.max_concurrent)):
        if value is not None:
            out[key] = value
    if opts.environment:
        out.setdefault("Environment", {}).update(key_value(text, "--environment") for text in opts.environment)
    source = given.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
    if not source:
        raise ConfigError("--input is required: the S3 prefix (or manifest) of the files to transform")
    parse_location(source, "TransformInput.DataSource.S3DataSource.S3Uri")
    check_instance_and_uris(str(resources.get("InstanceType", "local")),
                            {"--input": source, "--output-path": output["S3OutputPath"]})
    model = (model_request or {}).get("PrimaryContainer", {}).get("ModelDataUrl") or f"model {out['ModelName']}"
    places = plan.transform_plan(model, source, output["S3OutputPath"])
    return Submission(KINDS["transform"], out, places, model_request=model_request)
