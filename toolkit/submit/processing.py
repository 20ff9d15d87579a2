"""CreateProcessingJob as the SDK v2 ScriptProcessor sends it.

Built by the emulator's request model (``toolkit local process``'s options and JSON, ``--code`` as
ScriptProcessor's ``code``); every input that is on this machine (the code too) is uploaded first, as
the SDK uploads it: a file to ``<bucket>/<job>/input/<name>/<file>``, a folder's files under
``<bucket>/<job>/input/<name>/``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from toolkit import plan
from toolkit.errors import ConfigError
from toolkit.local.procrequest import ProcessOverrides, apply_process_overrides, parse_processing_request
from toolkit.local.storage import parse_location, walk_files
from toolkit.submit.kinds import KINDS, Submission, Upload
from toolkit.submit.target import Target, check_role, check_service_values


def _local_inputs(out: dict[str, Any], target: Target) -> list[Upload]:
    """Point every local input at where it will be uploaded; the uploads."""
    job = str(out["ProcessingJobName"])
    uploads = []
    for index, spec in enumerate(out.get("ProcessingInputs") or []):
        s3 = spec.get("S3Input") if isinstance(spec, dict) else None
        uri = s3.get("S3Uri") if isinstance(s3, dict) else None
        if not isinstance(uri, str) or uri.startswith("s3://") or not uri:
            continue
        where = f"ProcessingInputs[{index}] ({spec.get('InputName')}).S3Input.S3Uri"
        local = parse_location(uri, where).path
        assert local is not None
        dest = plan.processing_upload(target.root, job, str(spec.get("InputName")))
        owner = target.owner_args(target.bucket)
        if local.is_file():
            dest = dest.join(local.name)
            uploads.append(Upload(local, dest, owner))
        elif local.is_dir():
            files = list(walk_files(local))
            if not files:
                raise ConfigError(f"{where}: folder {local} is empty; the platform fails a job whose input is empty")
            uploads += [Upload(path, dest.join(*name.split("/")), owner) for name, path in files]
        else:
            raise ConfigError(f"{where}: {uri!r} is neither an S3 URI nor a file or folder here")
        s3["S3Uri"] = dest.uri
    return uploads


def processing_submission(data: Mapping[str, Any], overrides: ProcessOverrides, target: Target,
                          output_path: Optional[str]) -> Submission:
    """Check everything and decide every location; nothing is uploaded or sent here."""
    out = apply_process_overrides(data, overrides, output_path or target.root)
    check_role(out, target)
    cluster = out.setdefault("ProcessingResources", {}).setdefault("ClusterConfig", {})
    cluster.setdefault("VolumeSizeInGB", target.volume_size)
    parse_processing_request(out)  # the emulator's checks first, on the request as given
    uploads = _local_inputs(out, target)
    request = parse_processing_request(out)
    uris = {f"output {o.name}": o.uri for o in request.outputs}
    check_service_values(request.image, request.instance_type, uris)
    return Submission(KINDS["processing"], dict(request.raw), plan.processing_plan(request), uploads=uploads)
