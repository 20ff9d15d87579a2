"""The git fetcher, end to end: the real ``train`` script cloning real repositories (made with the
git CLI) over file://, ``git daemon``, ``git http-backend`` behind a token-checking HTTP server,
and an ssh command stand-in (GIT_SSH_COMMAND) that runs git-upload-pack locally."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from helpers import Job, free_port

TOKEN = "ghp_s3cr3tT0kenValue1234567890"
GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="needs the git command")
SCRIPT = "import os\nprint('version', {v!r}, 'from', os.path.dirname(os.path.abspath(__file__)))\n"


def git(*args: str, cwd: Path | None = None) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd or "/"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run([GIT or "git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


class Repos:
    def __init__(self, root: Path) -> None:
        self.root = root
        work = root / "work"
        work.mkdir(parents=True)
        git("init", "-q", "-b", "main", cwd=work)
        self.v1 = commit(work, {"src/train.py": SCRIPT.format(v="v1"), "README": "x"}, "v1")
        git("tag", "v1", cwd=work)
        self.v2 = commit(work, {"src/train.py": SCRIPT.format(v="v2")}, "v2")
        git("checkout", "-q", "-b", "feature/x", cwd=work)
        commit(work, {"src/train.py": SCRIPT.format(v="feature")}, "feature")
        git("checkout", "-q", "main", cwd=work)
        self.head = commit(work, {"src/train.py": SCRIPT.format(v="main")}, "main")
        git("clone", "-q", "--bare", str(work), str(root / "public.git"))
        private = root / "privwork"
        private.mkdir()
        git("init", "-q", "-b", "main", cwd=private)
        commit(private, {"train.py": SCRIPT.format(v="private")}, "private")
        git("clone", "-q", "--bare", str(private), str(root / "private.git"))


class GitHTTP(BaseHTTPRequestHandler):
    """git's smart HTTP protocol: ``git http-backend`` run CGI-style; /private* needs the token
    as the Basic password (any user name, as GitHub, GitLab and Bitbucket accept)."""

    root = Path("/")
    authorizations: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.cgi()

    def do_POST(self) -> None:
        self.cgi()

    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        self.authorizations.append(header)
        if not header.startswith("Basic "):
            return False
        _user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return password == TOKEN

    def cgi(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/private") and not self.authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root)}
        for key, value in self.headers.items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        out = subprocess.run([GIT or "git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Repos:
    return Repos(tmp_path_factory.mktemp("repos"))


@pytest.fixture(scope="module")
def daemon(repos: Repos) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([GIT or "git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repos.root}",
                             "--listen=127.0.0.1", f"--port={port}", str(repos.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def http_git(repos: Repos) -> Iterator[str]:
    handler = type("Handler", (GitHTTP,), {"root": repos.root, "authorizations": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(job: Job, uri: str | None = None, settings: dict | None = None, **env: str) -> subprocess.CompletedProcess:
    hps = {"sagemaker_program": "train.py", **(settings or {})}
    if uri:
        hps["sagemaker_submit_directory"] = uri
    job.hyperparameters(hps).resources()
    return job.run(**env)


def version(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("version "))
    return line.split()[1]


def failed(job: Job, proc: subprocess.CompletedProcess, fragment: str) -> str:
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    failure = job.failure.read_text()
    assert fragment in failure and "\n" not in failure and errors[0].endswith(failure)
    assert not job.code.exists()  # nothing half-cloned where the code goes
    assert not [p for p in job.base.iterdir() if "partial" in p.name]
    return failure


def test_branch_with_a_slash_over_file_url_and_subdirectory(job: Job, repos: Repos) -> None:
    proc = run(job, f"git+file://{repos.root}/public.git@feature/x#subdirectory=src")
    assert version(proc) == "feature"
    assert f"from {job.code / 'src'}" in proc.stdout


def test_tag_over_git_daemon_is_a_shallow_clone(job: Job, repos: Repos, daemon: str) -> None:
    assert version(run(job, f"git+{daemon}/public.git@v1#subdirectory=src")) == "v1"
    assert git("rev-list", "--count", "HEAD", cwd=job.code) == "1"
    assert (job.code / ".git" / "shallow").is_file()


def test_default_branch_without_a_ref(job: Job, repos: Repos, daemon: str) -> None:
    assert version(run(job, f"git+{daemon}/public.git#subdirectory=src")) == "main"


def test_full_commit_sha_that_no_branch_points_at(job: Job, repos: Repos, daemon: str) -> None:
    assert version(run(job, f"git+{daemon}/public.git@{repos.v2}#subdirectory=src")) == "v2"
    assert git("rev-parse", "HEAD", cwd=job.code) == repos.v2


def test_abbreviated_commit_sha(job: Job, repos: Repos) -> None:
    assert version(run(job, f"git+file://{repos.root}/public.git@{repos.v1[:10]}#subdirectory=src")) == "v1"


def test_ssh_url_goes_through_git_ssh_command(job: Job, repos: Repos, tmp_path: Path) -> None:
    # Stands in for ssh (no sshd here): runs the remote command git asks for on this machine.
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text('#!/bin/sh\necho "$@" >> "$0.log"\nfor last; do :; done\nexec sh -c "$last"\n')
    fake_ssh.chmod(0o755)
    proc = run(job, f"git+ssh://git@gitserver{repos.root}/public.git@main#subdirectory=src",
               GIT_SSH_COMMAND=str(fake_ssh), GIT_SSH_VARIANT="simple")
    assert version(proc) == "main"
    assert f"gitserver git-upload-pack '{repos.root}/public.git'" in (tmp_path / "fake-ssh.log").read_text()


def test_sdk_git_settings_with_a_token_never_leak_it(job: Job, http_git: str, tmp_path: Path) -> None:
    # A git wrapper on PATH records every git command line (what `ps` would show as the title).
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    argv_log = tmp_path / "argv.log"
    (wrappers / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {GIT} "$@"\n')
    (wrappers / "git").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")  # must not be used
    settings = {"sagemaker_git_repo": f"{http_git}/private.git", "sagemaker_git_branch": "main",
                "sagemaker_git_token": TOKEN}
    proc = run(job, settings=settings, PATH=f"{wrappers}:{os.environ['PATH']}", HOME=str(home))
    assert version(proc) == "private"
    assert TOKEN not in proc.stdout + proc.stderr
    assert TOKEN not in argv_log.read_text() and "fetch" in argv_log.read_text()
    config = (job.code / ".git" / "config").read_text()
    assert TOKEN not in config and f"{http_git}/private.git" in config
    assert not (home / ".git-credentials").exists()
    assert not job.failure.exists()


def test_private_repo_without_a_token(job: Job, http_git: str) -> None:
    proc = run(job, f"git+{http_git}/private.git@main")
    failed(job, proc, "needs authentication and no credentials were given; set sagemaker_git_token")


def test_wrong_token_is_rejected_and_not_echoed(job: Job, http_git: str) -> None:
    wrong = "ghp_wrongTokenValue000000"
    proc = run(job, f"git+{http_git}/private.git@main", settings={"sagemaker_git_token": wrong})
    failure = failed(job, proc, "the credentials given were rejected")
    assert wrong not in failure and wrong not in proc.stderr


def test_password_in_the_url_is_used_and_kept_out_of_everything(job: Job, http_git: str) -> None:
    host = http_git.removeprefix("http://")
    proc = run(job, f"git+http://me:{TOKEN}@{host}/private.git@main")
    assert version(proc) == "private"
    assert TOKEN not in proc.stdout + proc.stderr + (job.code / ".git" / "config").read_text()


def test_ref_that_does_not_exist(job: Job, repos: Repos, daemon: str) -> None:
    proc = run(job, f"git+{daemon}/public.git@no-such-branch")
    failure = failed(job, proc, "no branch, tag or commit 'no-such-branch' in the repository")
    assert failure.startswith(f"{daemon}/public.git@no-such-branch: ")


def test_sha_that_does_not_exist(job: Job, repos: Repos) -> None:
    proc = run(job, f"git+file://{repos.root}/public.git@deadbeef")
    failed(job, proc, "no branch, tag or commit 'deadbeef'")


def test_repository_that_does_not_exist(job: Job, daemon: str) -> None:
    proc = run(job, f"git+{daemon}/missing.git@main")
    failed(job, proc, f"{daemon}/missing.git@main: repository not found")


def test_subdirectory_that_does_not_exist(job: Job, repos: Repos) -> None:
    proc = run(job, f"git+file://{repos.root}/public.git@main#subdirectory=nope")
    failed(job, proc, "subdirectory 'nope' is not a folder in the fetched code")


def test_image_without_git(job: Job, repos: Repos, tmp_path: Path) -> None:
    proc = run(job, f"git+file://{repos.root}/public.git@main", PATH=str(tmp_path))
    failed(job, proc, "fetching git code needs the git command; install git in the image")


@pytest.mark.parametrize(("uri", "url", "ref", "sub"), [
    ("git+https://h/o/r.git@feature/x#subdirectory=a/b", "https://h/o/r.git", "feature/x", "a/b"),
    ("git+git@github.com:org/repo.git@v1.2", "git@github.com:org/repo.git", "v1.2", None),
    ("git+ssh://git@h:2222/o/r.git", "ssh://git@h:2222/o/r.git", None, None),
    ("git+https://me:p%40ss@h/r.git@main", "https://h/r.git", "main", None),
])
def test_uri_forms(uri: str, url: str, ref: str | None, sub: str | None) -> None:
    from toolkit.builtin.git import parse

    source = parse(uri)
    assert (source.url, source.ref, source.subdirectory) == (url, ref, sub)
    if "me:" in uri:
        assert (source.username, source.password) == ("me", "p@ss")
