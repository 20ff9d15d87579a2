"""The https fetcher, end to end: the real ``train`` script downloading from a real HTTP server on
127.0.0.1 (tarballs, a zip, a single script, server errors, a dropped connection, Basic auth), and
from a real TLS server whose certificate comes from a private CA made here."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from archives import HOSTILE, good, good_zip
from helpers import Job, serving

SCRIPT = b"print('single https script ran')\n"


class Files(BaseHTTPRequestHandler):
    """Serves fixed bodies by path; counts requests so a test can see retries happen."""

    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", length: int | None = None, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.hits[path] = self.hits.get(path, 0) + 1
        n = self.hits[path]
        if path == "/code/sourcedir.tar.gz":
            self.reply(200, good(), Content_Type="application/gzip")
        elif path == "/code/sourcedir.zip":
            self.reply(200, good_zip())
        elif path == "/code/train.py":
            self.reply(200, SCRIPT, Content_Type="text/x-python")
        elif path == "/flaky/sourcedir.tar.gz":
            self.reply(503, b"busy") if n <= 2 else self.reply(200, good())
        elif path == "/dropped/sourcedir.tar.gz":
            data = good({"data.bin": bytes(300_000)})
            self.reply(200, data[: len(data) // 2], length=len(data))  # then the connection closes
            self.close_connection = True
        elif path == "/bad/sourcedir.tar.gz":
            self.reply(200, HOSTILE["symlink_etc"][0])
        elif path == "/bad/truncated.tar.gz":
            self.reply(200, HOSTILE["truncated_gzip"][0])
        elif path == "/private/sourcedir.tar.gz":
            expected = "Basic " + base64.b64encode(b"me:p%ss").decode()
            if self.headers.get("Authorization") != expected:
                self.reply(401, WWW_Authenticate='Basic realm="code"')
            else:
                self.reply(200, good())
        else:
            self.reply(404, b"not here")


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[str, dict[str, int]]]:
    handler = type("Handler", (Files,), {"hits": {}})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield f"http://127.0.0.1:{port}", handler.hits


def run(job: Job, uri: str, **env: str) -> subprocess.CompletedProcess:
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": uri}).resources()
    return job.run(**env)


def failed(job: Job, proc: subprocess.CompletedProcess, fragment: str) -> str:
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    failure = job.failure.read_text()
    assert fragment in failure and "\n" not in failure and "Traceback" not in proc.stderr
    assert not job.code.exists()
    assert not [p for p in job.base.iterdir() if "partial" in p.name]
    return failure


@pytest.mark.parametrize("name", ["sourcedir.tar.gz", "sourcedir.zip"])
def test_archive_is_streamed_into_the_code_folder(job: Job, http: tuple, name: str) -> None:
    proc = run(job, f"{http[0]}/code/{name}")
    assert proc.returncode == 0, proc.stderr
    assert "remote code ran from " + str(job.code) in proc.stdout
    assert (job.code / "pkg" / "helper.py").read_text() == "VALUE = 42\n"


def test_single_script(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/code/train.py")
    assert proc.returncode == 0, proc.stderr
    assert "single https script ran" in proc.stdout
    assert [p.name for p in job.code.iterdir()] == ["train.py"]


def test_server_errors_are_retried(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/flaky/sourcedir.tar.gz")
    assert proc.returncode == 0, proc.stderr
    assert http[1]["/flaky/sourcedir.tar.gz"] == 3
    assert proc.stderr.count("HTTP Error 503") == 2 and "attempt 3 of 4" in proc.stderr


def test_dropped_connection_is_retried_then_reported(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/dropped/sourcedir.tar.gz", TOOLKIT_FETCH_ATTEMPTS="2")
    failed(job, proc, "/dropped/sourcedir.tar.gz: download failed: ConnectionError: connection closed after")
    assert http[1]["/dropped/sourcedir.tar.gz"] == 2


def test_not_found(job: Job, http: tuple) -> None:
    proc = run(job, f"{http[0]}/nothing/sourcedir.tar.gz")
    failed(job, proc, "/nothing/sourcedir.tar.gz: HTTP 404: not found")


def test_hostile_and_truncated_archives(job: Job, make_job, http: tuple) -> None:
    failed(job, run(job, f"{http[0]}/bad/sourcedir.tar.gz"), "symlink 'etc' -> '/etc' points outside")
    other = make_job("other")
    failed(other, run(other, f"{http[0]}/bad/truncated.tar.gz"), "corrupt or truncated")


def test_basic_auth_from_the_url_is_sent_and_masked(job: Job, make_job, http: tuple) -> None:
    host = http[0].removeprefix("http://")
    proc = run(job, f"http://me:p%25ss@{host}/private/sourcedir.tar.gz")
    assert proc.returncode == 0, proc.stderr
    other = make_job("other")
    failure = failed(other, run(other, f"http://me:wrong@{host}/private/sourcedir.tar.gz"), "HTTP 401")
    assert "wrong" not in failure and "me:******@" in failure


# ------------------------------------------------------------------------------ TLS


def private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA made here and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolkit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


# Machines (this one too) often set these to the system's bundle for every tool: empty means unset
NO_CA = {"SSL_CERT_FILE": "", "REQUESTS_CA_BUNDLE": ""}


class TLSServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refuses the certificate ends the handshake: expected here


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The same files over TLS on 127.0.0.1: (base URL, the CA's certificate)."""
    ca, cert, key = private_ca(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = TLSServer(("127.0.0.1", 0), type("Handler", (Files,), {"hits": {}}))
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    with serving(server) as port:
        yield f"https://127.0.0.1:{port}", ca


def test_tls_server_with_a_private_ca_is_refused_without_it(job: Job, https: tuple) -> None:
    url, _ = https
    proc = run(job, f"{url}/code/sourcedir.tar.gz", **NO_CA)
    host = url.removeprefix("https://")
    failure = failed(job, proc, f"{url}/code/sourcedir.tar.gz: the TLS certificate of {host} failed verification "
                                "(unable to get local issuer certificate); if the server's certificate comes from "
                                "a private CA, set SSL_CERT_FILE or REQUESTS_CA_BUNDLE")
    assert "retrying" not in proc.stderr  # the same certificate would be refused again
    assert failure.startswith(url)


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_tls_server_with_a_private_ca_is_fetched_with_its_certificate(job: Job, https: tuple,
                                                                      variable: str) -> None:
    url, ca = https
    proc = run(job, f"{url}/code/sourcedir.tar.gz", **{**NO_CA, variable: str(ca)})
    assert proc.returncode == 0, proc.stderr
    assert "remote code ran from " + str(job.code) in proc.stdout
    assert (job.code / "pkg" / "helper.py").read_text() == "VALUE = 42\n"


def test_ssl_cert_file_wins_over_requests_ca_bundle(job: Job, make_job, https: tuple, tmp_path: Path) -> None:
    url, ca = https
    other = tmp_path / "other-ca.pem"
    other.write_bytes(private_ca(tmp_path)[0].read_bytes())  # a CA that did not sign the server's certificate
    proc = run(job, f"{url}/code/train.py", SSL_CERT_FILE=str(ca), REQUESTS_CA_BUNDLE=str(other))
    assert proc.returncode == 0, proc.stderr
    refused = make_job("refused")
    failed(refused, run(refused, f"{url}/code/train.py", SSL_CERT_FILE=str(other), REQUESTS_CA_BUNDLE=str(ca)),
           "failed verification (unable to get local issuer certificate)")


def test_a_certificate_for_another_host_is_refused_naming_the_mismatch(job: Job, https: tuple) -> None:
    url, ca = https
    named = url.replace("127.0.0.1", "localhost")  # the certificate is for 127.0.0.1 only
    failed(job, run(job, f"{named}/code/train.py", **{**NO_CA, "SSL_CERT_FILE": str(ca)}),
           f"the TLS certificate of {named.removeprefix('https://')} failed verification (Hostname mismatch, "
           "certificate is not valid for 'localhost'.)")


def test_a_missing_ca_bundle_is_a_one_line_error(job: Job, https: tuple, tmp_path: Path) -> None:
    failed(job, run(job, f"{https[0]}/code/train.py", **{**NO_CA, "SSL_CERT_FILE": str(tmp_path / "nope.pem")}),
           f"cannot use SSL_CERT_FILE={tmp_path / 'nope.pem'} as the CA bundle (No such file or directory)")
