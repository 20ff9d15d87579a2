"""Resolve where the job goes, then send it: bucket, uploads, CreateModel, Create*Job, in that order."""

from __future__ import annotations

from typing import Optional

from toolkit.local.source import upload_source
from toolkit.submit.account import Account, default_bucket_name, ensure_bucket
from toolkit.submit.kinds import Submission
from toolkit.submit.target import SDK_VOLUME_SIZE, Target


def resolve_target(account: Account, bucket: Optional[str], role: Optional[str],
                   volume_size: int = SDK_VOLUME_SIZE) -> Target:
    """``--bucket``, else the SDK's default bucket name (STS GetCallerIdentity; nothing is created yet)."""
    if bucket:
        return Target(bucket.removeprefix("s3://").strip("/"), None, role, account.region, volume_size)
    return Target(default_bucket_name(account), account.account_id(), role, account.region, volume_size)


def _uses_bucket(submission: Submission, target: Target) -> bool:
    prefix = target.root + "/"
    uris = [p.uri for p in submission.places] + [u.dest.uri for u in submission.uploads]
    return any(uri == target.root or uri.startswith(prefix) for uri in uris)


def send(account: Account, submission: Submission, target: Target) -> dict[str, str]:
    """Create the bucket if the job uses it and it is missing, upload, create; the Create call's answer."""
    if _uses_bucket(submission, target):
        ensure_bucket(account, target.bucket, target.owner)
    storage = account.storage()
    if submission.source is not None:
        upload_source(storage, submission.source, submission.source_extra_args)
    for upload in submission.uploads:
        storage.upload_file(upload.src, upload.dest, upload.extra_args)
    if submission.model_request is not None:
        account.call("sagemaker", "create_model", **submission.model_request)
    answer = account.call("sagemaker", submission.kind.operation("create"), **submission.request)
    return {k: v for k, v in answer.items() if isinstance(v, str)}
