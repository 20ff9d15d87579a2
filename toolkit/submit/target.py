"""Where a submitted job's files go and as whom it runs, and the checks only the service needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from toolkit.errors import ConfigError
from toolkit.local.request import DEFAULT_INSTANCE_TYPE

SDK_VOLUME_SIZE = 30  # GB, the SDK v2's default volume_size (training and processing)
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")


@dataclass(frozen=True)
class Target:
    """The bucket for uploads and default outputs, the role, the region."""

    bucket: str
    owner: Optional[str]  # the account id when the bucket is the SDK's default (its owner is checked)
    role: Optional[str]
    region: str
    volume_size: int = SDK_VOLUME_SIZE

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}"

    def owner_args(self, bucket: str) -> dict[str, str]:
        """ExpectedBucketOwner for uploads to the SDK-chosen default bucket, as the SDK sends it."""
        return {"ExpectedBucketOwner": self.owner} if self.owner and bucket == self.bucket else {}


def check_role(request: dict[str, Any], target: Target) -> None:
    if target.role:
        request["RoleArn"] = target.role
    role = request.get("RoleArn")
    if not role:
        raise ConfigError("--role is required: the ARN of the IAM role the job runs as, e.g. "
                          "arn:aws:iam::123456789012:role/SageMakerRole")
    if not isinstance(role, str) or not ROLE_ARN.match(role):
        raise ConfigError(f"RoleArn {role!r} is not an IAM role ARN; expected "
                          f"arn:aws:iam::<12-digit account>:role/NAME")


def check_service_values(image: Optional[str], instance_type: str, uris: dict[str, str]) -> None:
    """What ``toolkit local`` accepts and SageMaker does not: no image, instance type ``local``, local paths."""
    if not image:
        raise ConfigError("--image is required: the image URI in ECR, e.g. "
                          "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:latest")
    check_instance_and_uris(instance_type, uris)


def check_instance_and_uris(instance_type: str, uris: dict[str, str]) -> None:
    if instance_type == DEFAULT_INSTANCE_TYPE or not instance_type.startswith("ml."):
        raise ConfigError(f"instance type {instance_type!r}: give --instance-type with a SageMaker instance type, "
                          f"e.g. ml.m5.large")
    for where, uri in uris.items():
        if not uri.startswith("s3://"):
            raise ConfigError(f"{where}: {uri!r} is not in S3; SageMaker reads and writes s3:// URIs only "
                              f"(upload it first, e.g. aws s3 sync)")
