"""The S3 fetcher, end to end: the real ``train`` script fetching from moto's S3 server over HTTP.

The wrong-credentials and access-denied cases use a second moto server started with
authentication on (INITIAL_NO_AUTH_ACTION_COUNT), so the refusals are moto's real IAM checks.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from archives import BAD_ARCHIVES, HOSTILE, assert_failed_cleanly, bake, good, good_zip, snapshot, submit
from helpers import BIN, Job, clean_environ, free_port


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"code-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])  # every format from a stream: test_archive.py
def test_sourcedir_archive_is_fetched_and_run(job: Job, s3: Any, bucket: str, s3_env: dict, kind: str) -> None:
    body = {"tar.gz": good(), "tar": good(mode="w"), "zip": good_zip()}[kind]
    s3.put_object(Bucket=bucket, Key=f"job/source/sourcedir.{kind}", Body=body)
    proc = submit(job, f"s3://{bucket}/job/source/sourcedir.{kind}").run(**s3_env)
    assert proc.returncode == 0, proc.stderr
    assert "remote code ran from " + str(job.code) in proc.stdout
    assert (job.model / "from.txt").read_text() == str(job.code / "train.py")
    assert (job.code / "pkg" / "helper.py").read_text() == "VALUE = 42\n"


def test_single_script_object_through_the_s3_specific_endpoint(job: Job, s3: Any, bucket: str, s3_env: dict) -> None:
    s3.put_object(Bucket=bucket, Key="scripts/train.py", Body=b"print('single script ran')\n")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: AWS_ENDPOINT_URL_S3 must win
    env = dict(s3_env, AWS_ENDPOINT_URL=dead, AWS_ENDPOINT_URL_S3=s3_env["AWS_ENDPOINT_URL"])
    proc = submit(job, f"s3://{bucket}/scripts/train.py").run(**env)
    assert proc.returncode == 0, proc.stderr
    assert "single script ran" in proc.stdout
    assert sorted(os.listdir(job.code)) == ["train.py"]


@pytest.mark.parametrize("slash", ["/", ""])
def test_prefix_fetches_every_object_below_it(job: Job, s3: Any, bucket: str, s3_env: dict, slash: str) -> None:
    s3.put_object(Bucket=bucket, Key="src/train.py", Body=b"from pkg.helper import VALUE\nprint('value', VALUE)\n")
    s3.put_object(Bucket=bucket, Key="src/pkg/helper.py", Body=b"VALUE = 42\n")
    s3.put_object(Bucket=bucket, Key="src/pkg/", Body=b"")  # a console's folder marker
    s3.put_object(Bucket=bucket, Key="src-other/train.py", Body=b"raise SystemExit('wrong prefix')\n")
    proc = submit(job, f"s3://{bucket}/src{slash}").run(**s3_env)
    assert proc.returncode == 0, proc.stderr
    assert "value 42" in proc.stdout
    assert snapshot(job.code) == {"pkg/helper.py": "VALUE = 42\n",
                                  "train.py": "from pkg.helper import VALUE\nprint('value', VALUE)\n"}


def test_remote_code_wins_over_code_baked_into_the_image(job: Job, s3: Any, bucket: str, s3_env: dict) -> None:
    before = bake(job)
    s3.put_object(Bucket=bucket, Key="s.tar.gz", Body=good())
    proc = submit(job, f"s3://{bucket}/s.tar.gz").run(**s3_env)
    assert proc.returncode == 0, proc.stderr
    assert "baked code ran" not in proc.stdout and "remote code ran" in proc.stdout
    notes = [ln for ln in proc.stderr.splitlines() if "submit directory wins" in ln]
    assert len(notes) == 1 and str(job.code) in notes[0] and f"s3://{bucket}/s.tar.gz" in notes[0]
    assert snapshot(job.code) == before  # the image's code is not touched


@pytest.mark.parametrize("case", ["link_chain", "truncated_gzip", "size_bomb"])  # all: test_archive.py
def test_bad_archive_fails_the_job_cleanly(job: Job, s3: Any, bucket: str, s3_env: dict, case: str) -> None:
    data, fragment, extra = BAD_ARCHIVES[case]
    before = bake(job)
    s3.put_object(Bucket=bucket, Key=f"{case}/sourcedir.tar.gz", Body=data)
    uri = f"s3://{bucket}/{case}/sourcedir.tar.gz"
    proc = submit(job, uri).run(TMPDIR=str(job.root), **s3_env, **extra)
    failure = assert_failed_cleanly(job, proc, fragment)
    assert failure.startswith(uri + ": ")
    assert snapshot(job.code) == before


def test_bad_archive_without_baked_code_leaves_no_code_folder(job: Job, s3: Any, bucket: str, s3_env: dict) -> None:
    s3.put_object(Bucket=bucket, Key="s.tar.gz", Body=HOSTILE["dotdot"][0])
    proc = submit(job, f"s3://{bucket}/s.tar.gz").run(**s3_env)
    assert_failed_cleanly(job, proc, "'../evil.py' points outside")
    assert not job.code.exists()
    assert not (job.base / "evil.py").exists()


def test_missing_bucket(job: Job, s3_env: dict) -> None:
    bucket = f"absent-{uuid.uuid4().hex[:8]}"
    proc = submit(job, f"s3://{bucket}/s.tar.gz").run(**s3_env)
    failure = assert_failed_cleanly(job, proc, f"bucket {bucket!r} does not exist (NoSuchBucket)")
    assert failure.startswith(f"s3://{bucket}/s.tar.gz: ")
    assert not job.code.exists()


def test_missing_key(job: Job, bucket: str, s3_env: dict) -> None:
    before = bake(job)
    proc = submit(job, f"s3://{bucket}/nothing/sourcedir.tar.gz").run(**s3_env)
    assert_failed_cleanly(job, proc, f"s3://{bucket}/nothing/sourcedir.tar.gz: no such object")
    assert snapshot(job.code) == before


def test_unknown_scheme_lists_what_is_supported(job: Job) -> None:
    proc = submit(job, "ftp://example.com/sourcedir.tar.gz").run()
    failure = assert_failed_cleanly(job, proc, "no fetcher accepts the code location 'ftp://example.com/")
    for scheme in ("s3", "https", "git+https", "git+ssh", "file"):
        assert scheme in failure.split("supported:")[1]


# -- a moto server with authentication on -----------------------------------------------------


@pytest.fixture(scope="module")
def locked_s3() -> Iterator[dict[str, str]]:
    """A second moto server that checks credentials: its first four requests (the set-up below)
    pass without, every later one is checked against moto's IAM."""
    import boto3

    port = free_port()
    env = clean_environ(INITIAL_NO_AUTH_ACTION_COUNT="4")
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup",
              "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="no-rights")
        key = iam.create_access_key(UserName="no-rights")["AccessKey"]
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="s.tar.gz", Body=good())
        yield {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
               "KEY_ID": key["AccessKeyId"], "SECRET": key["SecretAccessKey"]}
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_wrong_credentials(job: Job, locked_s3: dict) -> None:
    proc = submit(job, "s3://locked/s.tar.gz").run(
        AWS_ENDPOINT_URL=locked_s3["AWS_ENDPOINT_URL"], AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="AKIANOTAREALKEY00000", AWS_SECRET_ACCESS_KEY="wrong")
    failure = assert_failed_cleanly(job, proc, "the AWS credentials were rejected (InvalidAccessKeyId)")
    assert "wrong" not in failure
    assert not job.code.exists()


def test_access_denied(job: Job, locked_s3: dict) -> None:
    proc = submit(job, "s3://locked/s.tar.gz").run(
        AWS_ENDPOINT_URL=locked_s3["AWS_ENDPOINT_URL"], AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID=locked_s3["KEY_ID"], AWS_SECRET_ACCESS_KEY=locked_s3["SECRET"])
    assert_failed_cleanly(job, proc, "s3://locked/s.tar.gz: access denied (AccessDenied)")
    assert not job.code.exists()


# -- transient failures: a proxy in front of moto that fails on purpose ------------------------


class FlakyProxy(BaseHTTPRequestHandler):
    """Relays to moto; for a GET of a path with planned failures, the next one happens instead:
    "503" answers S3's SlowDown error, "cut" sends half the body and closes the connection."""

    upstream = ""
    plans: dict[str, list[str]] = {}
    gets: dict[str, int] = {}
    signed: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.relay()

    def do_HEAD(self) -> None:
        self.relay()

    def do_PUT(self) -> None:
        self.relay()

    def relay(self) -> None:
        import http.client
        from urllib.parse import urlsplit

        path = self.path.split("?")[0]
        if self.command == "GET":
            self.gets[path] = self.gets.get(path, 0) + 1
            self.signed.append(self.headers.get("Authorization", ""))
        plan = self.plans.get(path, [])
        action = plan.pop(0) if plan and self.command == "GET" else ""
        if action == "503":
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        up = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        conn.request(self.command, self.path, body=data, headers=dict(self.headers))
        response = conn.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if action == "cut":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.command != "HEAD":
            self.wfile.write(payload)
        conn.close()


@pytest.fixture
def flaky(s3_server: str) -> Iterator[tuple[str, type]]:
    handler = type("Handler", (FlakyProxy,), {"upstream": s3_server, "plans": {}, "gets": {}, "signed": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def big_source() -> bytes:
    return good({"data.bin": random.Random(3).randbytes(400_000)})


def test_transient_errors_are_retried(job: Job, s3: Any, bucket: str, s3_env: dict, flaky: tuple) -> None:
    plan = ["503", "cut"]  # botocore retries the 503 answer; the toolkit restarts the broken-off body
    endpoint, handler = flaky
    s3.put_object(Bucket=bucket, Key="s.tar.gz", Body=big_source())
    handler.plans[f"/{bucket}/s.tar.gz"] = list(plan)
    proc = submit(job, f"s3://{bucket}/s.tar.gz").run(**dict(s3_env, AWS_ENDPOINT_URL=endpoint))
    assert proc.returncode == 0, proc.stderr
    assert "remote code ran" in proc.stdout
    assert handler.gets[f"/{bucket}/s.tar.gz"] == len(plan) + 1
    assert "retrying in" in proc.stderr


def test_connection_that_keeps_dropping_is_a_one_line_error(job: Job, s3: Any, bucket: str, s3_env: dict,
                                                            flaky: tuple) -> None:
    endpoint, handler = flaky
    s3.put_object(Bucket=bucket, Key="s.tar.gz", Body=big_source())
    handler.plans[f"/{bucket}/s.tar.gz"] = ["cut", "cut"]
    proc = submit(job, f"s3://{bucket}/s.tar.gz").run(
        **dict(s3_env, AWS_ENDPOINT_URL=endpoint, TOOLKIT_FETCH_ATTEMPTS="2"))
    assert_failed_cleanly(job, proc, f"s3://{bucket}/s.tar.gz: download failed: ")
    assert not job.code.exists()


def test_unreachable_endpoint(job: Job, s3_env: dict) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proc = submit(job, "s3://some-bucket/s.tar.gz").run(
        **dict(s3_env, AWS_ENDPOINT_URL=dead, TOOLKIT_FETCH_ATTEMPTS="1"))
    assert_failed_cleanly(job, proc, f"s3://some-bucket/s.tar.gz: cannot reach S3 at {dead}")


def test_no_credentials_at_all(job: Job, s3_env: dict) -> None:
    env = {k: v for k, v in s3_env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    proc = submit(job, "s3://some-bucket/s.tar.gz").run(
        AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true", **env)
    assert_failed_cleanly(job, proc, "s3://some-bucket/s.tar.gz: no AWS credentials found")


def test_region_setting_wins_over_the_variables(job: Job, s3: Any, bucket: str, s3_env: dict, flaky: tuple) -> None:
    endpoint, handler = flaky  # used here only to see how the requests were signed
    s3.put_object(Bucket=bucket, Key="s.tar.gz", Body=good())
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": f"s3://{bucket}/s.tar.gz",
                         "sagemaker_region": "eu-west-2"}).resources()
    proc = job.run(**dict(s3_env, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", SAGEMAKER_REGION="ap-south-1"))
    assert proc.returncode == 0, proc.stderr
    assert handler.signed and all("/eu-west-2/s3/aws4_request" in h for h in handler.signed)
