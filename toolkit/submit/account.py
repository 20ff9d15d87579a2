"""The AWS side of a submission: region, clients, account id, and the SDK's default bucket.

Clients come from toolkit/aws.py (the one builder). Every botocore error that reaches the user
goes through ``explain``: one line that says what happened and what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from toolkit import settings
from toolkit.errors import ConfigError, ToolkitError


class SubmitError(ToolkitError):
    """SageMaker, S3, STS or CloudWatch Logs refused a call, or cannot be reached."""


def explain(exc: BaseException, doing: str) -> ToolkitError:
    """One line for a botocore error: what failed and what to do (exit code 2)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, ToolkitError):
        return exc
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SubmitError(f"{doing}: no AWS credentials found; set AWS_PROFILE (after `aws configure` or "
                           f"`aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, NoRegionError):
        return SubmitError(f"{doing}: no AWS region; give --region or set AWS_REGION (e.g. us-east-1)")
    if isinstance(exc, EndpointConnectionError):
        return SubmitError(f"{doing}: cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}; check the network, "
                           f"the region and AWS_ENDPOINT_URL")
    if not isinstance(exc, ClientError):
        return SubmitError(f"{doing}: {type(exc).__name__}: {exc}")
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), " ".join(str(error.get("Message", "")).split())
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return SubmitError(f"{doing}: the AWS credentials were refused ({code}); renew them (`aws sso login`, "
                           f"a fresh session token) or check AWS_PROFILE")
    if code in ("AccessDenied", "AccessDeniedException", "403", "Forbidden"):
        return SubmitError(f"{doing}: access denied ({message or code}); the caller's IAM policy must allow it "
                           f"(ask your AWS administrator, or use a profile that has SageMaker and S3 access)")
    if code == "ResourceLimitExceeded":
        return SubmitError(f"{doing}: an account quota is reached ({message}); wait for running jobs to end, "
                           f"use fewer or smaller instances, or request an increase in Service Quotas (SageMaker)")
    if code == "ValidationException" and re.search(r"assume role|AssumeRole", message, re.IGNORECASE):
        return SubmitError(f"{doing}: SageMaker cannot assume the role ({message}); give --role the ARN of a role "
                           f"whose trust policy allows sagemaker.amazonaws.com to call sts:AssumeRole")
    if code == "ValidationException":
        where = validation_field(message)
        return SubmitError(f"{doing}: SageMaker refused {where or 'the request'}: {message}; fix it in the "
                           f"options or the request JSON (--dry-run prints the request)")
    if code in ("ResourceInUse",) or "already exists" in message:
        return SubmitError(f"{doing}: {message}; job names are unique per account and region: choose another "
                           f"--job-name, or leave it out to get a generated one")
    return SubmitError(f"{doing}: {code}: {message}")


def validation_field(message: str) -> str:
    """The request field a ValidationException names: ``'resourceConfig.instanceType'`` ->
    ``ResourceConfig.InstanceType``; '' when the message names none."""
    match = re.search(r"at '([A-Za-z0-9_.\[\]]+)'", message) or re.search(r"\b([a-z][A-Za-z]+(?:\.[a-z][A-Za-z]+)+)\b",
                                                                         message)
    if not match:
        return ""
    return ".".join(part[:1].upper() + part[1:] for part in match.group(1).split("."))


@dataclass
class Account:
    """Clients for one region and account, made on first use and shared."""

    environ: Mapping[str, str]
    region: str
    _clients: dict[str, Any] = field(default_factory=dict)
    _session: Any = None
    _account_id: Optional[str] = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], region: Optional[str] = None) -> Account:
        """The region is ``region``, else SAGEMAKER_REGION / AWS_REGION / AWS_DEFAULT_REGION (as
        ``settings.region`` reads them), else the profile's."""
        chosen = region or settings.region(environ)
        account = cls({**environ, **({"AWS_REGION": chosen} if chosen else {})}, chosen or "")
        if not chosen:
            account.region = account.session().region_name or ""
            account.environ = {**account.environ, "AWS_REGION": account.region}
        if not account.region:
            raise ConfigError("no AWS region; give --region, set AWS_REGION (e.g. us-east-1), or set the "
                              "profile's region (`aws configure set region us-east-1`)")
        return account

    def session(self) -> Any:
        if self._session is None:
            from toolkit import aws

            try:
                self._session = aws.session(self.environ, self.region or None)
            except Exception as exc:  # an unknown AWS_PROFILE
                raise SubmitError(f"AWS_PROFILE {self.environ.get('AWS_PROFILE')!r}: {exc}; choose a profile from "
                                  f"`aws configure list-profiles`") from exc
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from toolkit import aws

            self._clients[service] = aws.client(self.environ, service, region=self.region,
                                                boto_session=self.session(),
                                                retries={"mode": "standard", "max_attempts": 5})
        return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> Any:
        """``client.operation(**params)`` with its errors explained."""
        try:
            return getattr(self.client(service), operation)(**params)
        except Exception as exc:
            raise explain(exc, f"{_api_name(operation)}") from exc

    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self.call("sts", "get_caller_identity")["Account"])
        return self._account_id

    def storage(self) -> Any:
        from toolkit.local.storage import Storage

        return Storage(self.environ)


def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


# ---------------------------------------------------------------------------------------------
# The default bucket
# ---------------------------------------------------------------------------------------------


def default_bucket_name(account: Account) -> str:
    """``sagemaker-<region>-<account id>``, as sagemaker.Session.default_bucket() names it."""
    return f"sagemaker-{account.region}-{account.account_id()}"


def ensure_bucket(account: Account, bucket: str, owner: Optional[str]) -> bool:
    """Create ``bucket`` in the region when it is missing, as the SDK does (HeadBucket, with
    ExpectedBucketOwner when the SDK chose the name; CreateBucket with a LocationConstraint
    outside us-east-1). True when it was created."""
    from botocore.exceptions import ClientError

    s3 = account.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, **({"ExpectedBucketOwner": owner} if owner else {}))
        return False
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("403", "AccessDenied", "Forbidden"):
            whose = "owned by another account or " if owner else ""
            raise SubmitError(f"bucket {bucket} exists but is {whose}not accessible with these credentials; "
                              f"give --bucket with a bucket of yours") from exc
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise explain(exc, f"HeadBucket {bucket}") from exc
    except Exception as exc:
        raise explain(exc, f"HeadBucket {bucket}") from exc
    config = {} if account.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": account.region}}
    try:
        s3.create_bucket(Bucket=bucket, **config)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("BucketAlreadyOwnedByYou", "OperationAborted"):  # made meanwhile, or being made
            raise explain(exc, f"CreateBucket {bucket}") from exc
        return False
    except Exception as exc:
        raise explain(exc, f"CreateBucket {bucket}") from exc
    return True
