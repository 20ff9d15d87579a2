"""``toolkit submit`` against moto's server (SageMaker, S3, STS and CloudWatch Logs on one endpoint).

The control plane is the one thing mocked: the ``toolkit`` console script makes real boto3 calls over
HTTP to the ThreadedMotoServer the session fixture starts in this process. Because that server runs
here, a test can read what it received (``received``), make its answers fail (``refuse``), and set a
job's status as the service would (moto creates every job already Completed and never runs one).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import pytest
from submitjobs import ACCOUNT

LOCAL = str(Path(__file__).resolve().parent.parent / "local")
if LOCAL not in sys.path:
    sys.path.insert(0, LOCAL)

CREATE_CALLS = ("create_training_job", "create_processing_job", "create_transform_job", "create_model")


@pytest.fixture
def env(s3_env: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: moto's endpoint for every service, a fast poll."""
    return {**s3_env, "TOOLKIT_SUBMIT_POLL_SECONDS": "0.1"}


@pytest.fixture
def bucket(s3: Any) -> str:
    from localjobs import unique

    name = unique("submit")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Every CreateTrainingJob / CreateProcessingJob / CreateTransformJob / CreateModel body moto's
    server receives over HTTP, by boto3 method name, as the client sent it."""
    from moto.sagemaker.responses import SageMakerResponse

    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name in CREATE_CALLS:
        def record(self: Any, _original: Callable = getattr(SageMakerResponse, name), _name: str = name) -> Any:
            calls[_name].append(json.loads(self.body))
            return _original(self)
        monkeypatch.setattr(SageMakerResponse, name, record)
    return calls


@pytest.fixture
def backend() -> Any:
    """moto's SageMaker backend for the account and region the tests use."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT]["us-east-1"]


@pytest.fixture
def refuse(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, str], None]:
    """Make moto's SageMaker answer ``operation`` (a backend method) with the service error ``code``."""
    from moto.sagemaker.exceptions import SagemakerClientError
    from moto.sagemaker.models import SageMakerModelBackend

    def refuse_(operation: str, code: str, message: str) -> None:
        # moto serializes an error by the service of its class's module
        error = type(code, (SagemakerClientError,), {"code": code, "__module__": "moto.sagemaker.exceptions"})

        def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise error(message)
        monkeypatch.setattr(SageMakerModelBackend, operation, fail)
    return refuse_
