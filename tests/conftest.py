"""Fixtures: job folders, installed plugins, and a real S3 endpoint (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import Job, PluginSite, free_port


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path)


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[[str], Job]:
    def make(name: str) -> Job:
        return Job(tmp_path / name)
    return make


@pytest.fixture(scope="session")
def s3_server() -> Any:
    """A real S3 HTTP endpoint: moto's server mode on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server: str) -> dict[str, str]:
    """Variables that point boto3 (in this process or a child) at the moto server."""
    return {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(s3_env: dict[str, str]) -> Any:
    """A boto3 S3 client talking HTTP to the moto server."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def plugin_site(tmp_path: Path) -> PluginSite:
    return PluginSite(tmp_path / "site")
