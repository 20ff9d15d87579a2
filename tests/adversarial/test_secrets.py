"""Secrets never reach what the toolkit logs or writes: each secret word and its spellings, in
hyperparameters (flat and nested), settings, URIs and argv; through the failure file, the log,
`toolkit env` and the plugin trace. Real `train` and `toolkit` processes, a real HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from archives import good
from helpers import Job, run_cli

from toolkit.redact import SECRET_WORDS, looks_secret, mask_argv, mask_uri

# every word the rule knows, each in the spellings people use for option and variable names
SPELLINGS = {
    "SECRET": ["client_secret", "clientSecret"], "PASSWORD": ["db_password", "DB-Pass_word"],
    "PASSWD": ["passwd", "smtp.passwd"], "PASSPHRASE": ["ssh_passphrase", "pass-phrase"],
    "TOKEN": ["hf_token", "HfToken"], "KEY": ["wandb_api_key", "apiKey"],
    "PRIVATE": ["private_pem", "PrivatePem"], "CREDENTIAL": ["gcp_credentials", "Credential"],
    "AUTH": ["auth", "basic-auth"], "COOKIE": ["session_cookie", "Cookie"],
    "SIGNATURE": ["url_signature", "Signature"],
}


def test_every_secret_word_has_spellings_here() -> None:
    assert set(SPELLINGS) == set(SECRET_WORDS)


@pytest.mark.parametrize("word", sorted(SPELLINGS))
def test_each_word_and_spelling_is_secret(word: str) -> None:
    for name in SPELLINGS[word]:
        assert looks_secret(name), name


@pytest.mark.parametrize("name", ["epochs", "learning_rate", "batch-size", "model_dir", "optimizer"])
def test_ordinary_names_are_not_masked(name: str) -> None:
    assert not looks_secret(name)


def secret_hyperparameters() -> dict[str, str]:
    return {name: f"V{i}-{name}-leak" for i, name in enumerate(n for names in SPELLINGS.values() for n in names)}


def assert_nothing_leaks(text: str, values: list[str]) -> None:
    leaked = [v for v in values if v in text]
    assert not leaked, leaked


def test_no_secret_reaches_the_failure_file_the_log_or_toolkit_env(job: Job) -> None:
    secrets = secret_hyperparameters()
    nested = {"wandb": {"api_key": "NESTED-leak", "project": "p"}, "db": {"passwd": "NESTED2-leak"}}
    job.hyperparameters({**secrets, **nested, "epochs": 2, "sagemaker_program": "train.py",
                         "sagemaker_git_password": "GITPW-leak"}).resources()
    job.script("train.py", "import sys\nsys.exit('failed on purpose')\n")
    values = [*secrets.values(), "NESTED-leak", "NESTED2-leak", "GITPW-leak"]
    result = job.run(TOOLKIT_TRACE_PLUGINS="1", TOOLKIT_LOG_LEVEL="10")
    assert result.returncode == 1
    failure = job.failure.read_text()
    assert_nothing_leaks(failure, values)
    assert_nothing_leaks(result.stderr, values)
    assert "--epochs 2" in failure  # masking did not swallow the ordinary arguments
    assert "api_key=******" in result.stderr + failure  # the nested key is shown, its value is not
    assert "hook toolkit_environment returned" in result.stderr  # the trace ran, masked
    shown = run_cli("toolkit", "env", env=job.environ())
    assert shown.returncode == 0, shown.stderr
    assert_nothing_leaks(shown.stdout, values)
    data = json.loads(shown.stdout)
    assert data["hyperparameters"]["wandb"] == {"api_key": "******", "project": "p"}
    assert data["hyperparameters"]["epochs"] == 2
    variables = run_cli("toolkit", "env", "--variables", env=job.environ())
    assert variables.returncode == 0, variables.stderr
    assert_nothing_leaks(variables.stdout, values)
    assert json.loads(json.loads(variables.stdout)["SM_HPS"])["wandb"]["project"] == "p"


def test_wandb_api_key_in_argv_is_masked_in_failure_file_and_log(job: Job) -> None:
    job.hyperparameters({"wandb_api_key": "VALUE-leak", "sagemaker_program": "train.py"}).resources()
    job.script("train.py", "raise SystemExit(3)\n")
    result = job.run()
    assert result.returncode == 3
    assert "--wandb_api_key '******'" in job.failure.read_text()
    assert "VALUE-leak" not in result.stderr and "VALUE-leak" not in job.failure.read_text()


@pytest.mark.parametrize("argv, shown", [
    (["--token=abc", "x"], ["--token=******", "x"]),
    (["--Auth", "abc"], ["--Auth", "******"]),
    (["--cfg", "api_key=abc,lr=1"], ["--cfg", "api_key=******,lr=1"]),
    (["--data", "https://u:pw@h/x?sig=abc&n=1"], ["--data", "https://u:******@h/x?sig=******&n=1"]),
    (["--epochs", "3"], ["--epochs", "3"]),
])
def test_mask_argv(argv: list[str], shown: list[str]) -> None:
    assert mask_argv(argv) == shown


@pytest.mark.parametrize("uri, shown", [
    ("git+https://user:TOKEN@host/repo.git@main", "git+https://user:******@host/repo.git@main"),
    ("https://u:p@ss@host/code.tar.gz", "https://u:******@host/code.tar.gz"),
    ("https://ghp_TOKEN@github.com/o/r.git", "https://******@github.com/o/r.git"),
    ("https://h/c.tar.gz?X-Amz-Signature=S&X-Amz-Credential=C&v=1",
     "https://h/c.tar.gz?X-Amz-Signature=******&X-Amz-Credential=******&v=1"),
    ("https://h/c.tar.gz?access_token=T#subdirectory=src", "https://h/c.tar.gz?access_token=******#subdirectory=src"),
    ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),
    ("s3://bucket/key.tar.gz", "s3://bucket/key.tar.gz"),
])
def test_mask_uri(uri: str, shown: str) -> None:
    assert mask_uri(uri) == shown


class Code(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = good() if self.path.startswith("/code.tar.gz") else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Code)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_credentials_in_a_submit_directory_never_reach_the_log(job: Job, http: str) -> None:
    # item 1: code baked into the image, a remote submit directory with credentials in its URL
    uri = f"http://user:TOKEN-leak@{http}/code.tar.gz?token=QTOKEN-leak&v=1"
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": uri}).resources()
    job.script("train.py", "print('baked')\n")
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert "is replaced by http://user:******@" in result.stderr
    assert_nothing_leaks(result.stderr, ["TOKEN-leak", "QTOKEN-leak"])
    shown = run_cli("toolkit", "env", env=job.environ())
    assert_nothing_leaks(shown.stdout, ["TOKEN-leak", "QTOKEN-leak"])
    variables = run_cli("toolkit", "env", "--variables", env=job.environ())
    assert_nothing_leaks(variables.stdout, ["TOKEN-leak", "QTOKEN-leak"])


def test_credentials_in_a_failing_submit_directory_never_reach_the_failure_file(job: Job, http: str) -> None:
    job.hyperparameters({"sagemaker_program": "train.py",
                         "sagemaker_submit_directory": f"http://TOKEN-leak@{http}/missing.tar.gz"}).resources()
    result = job.run()
    assert result.returncode == 2
    failure = job.failure.read_text()
    assert "HTTP 404" in failure and "http://******@" in failure
    assert_nothing_leaks(failure + result.stderr, ["TOKEN-leak"])
