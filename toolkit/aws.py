"""The one place boto3 clients are made: S3 for the emulator and the fetcher, SageMaker, STS and
CloudWatch Logs for ``toolkit submit``.

Everything comes from an explicit ``environ`` mapping (a job's environment, or the CLI's), never
from os.environ behind the caller's back. ``AWS_ENDPOINT_URL_<SERVICE>`` then ``AWS_ENDPOINT_URL``
point a client at another endpoint (the tests use moto's server). boto3 is imported when a client
is made, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

# botocore's service ids as they appear in AWS_ENDPOINT_URL_<ID>
_ENDPOINT_VARIABLE = {"s3": "S3", "sagemaker": "SAGEMAKER", "sts": "STS", "logs": "CLOUDWATCH_LOGS"}


def endpoint_url(environ: Mapping[str, str], service: str) -> Optional[str]:
    own = _ENDPOINT_VARIABLE.get(service, service.upper().replace("-", "_"))
    return environ.get(f"AWS_ENDPOINT_URL_{own}") or environ.get("AWS_ENDPOINT_URL") or None


def session(environ: Mapping[str, str], region: Optional[str] = None) -> Any:
    """A boto3 session from the credentials and profile in ``environ``."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        profile_name=environ.get("AWS_PROFILE") or None,
        region_name=region,
    )


def client(environ: Mapping[str, str], service: str, region: Optional[str] = None,
           boto_session: Any = None, **config: Any) -> Any:
    """A boto3 client for ``service``; ``config`` goes to botocore's Config (retries, pools, timeouts)."""
    from botocore.config import Config

    made = boto_session or session(environ, region)
    return made.client(service, region_name=region, endpoint_url=endpoint_url(environ, service),
                       config=Config(**config) if config else None)
