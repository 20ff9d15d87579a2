"""Fetcher for git repositories, with the real ``git`` command.

URIs: ``git+https://host/repo.git@REF#subdirectory=path`` (also ``git+http``, ``git+ssh``,
``git+git``, ``git+file`` and the scp form ``git+git@host:org/repo.git``). REF is a branch, a
tag or a commit SHA; without it the default branch. This is also what the core makes of the
SDK's git_config (``sagemaker_git_repo`` / ``_branch`` / ``_commit``).

Credentials come from ``sagemaker_git_token`` or ``sagemaker_git_username`` /
``sagemaker_git_password`` (or a user:password in the URL, which is taken out of it). They reach
git only through a GIT_ASKPASS helper that reads them from the git process's environment: never
on a command line (the process title), never in the clone's .git/config, and any echo of them in
git's messages is masked. Stored credential helpers are switched off for the fetch, so nothing is
saved either. SSH uses the image's keys; GIT_SSH_COMMAND and the other GIT_* variables pass
through.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, Optional, Sequence
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from toolkit.errors import FetchError
from toolkit.hookspecs import hookimpl
from toolkit.log import log

if TYPE_CHECKING:  # pragma: no cover - types only
    import subprocess

# Every job start registers this module: what only a git fetch needs (subprocess, tempfile,
# shutil, toolkit.download) is imported when one happens.
SHA = r"[0-9a-fA-F]{7,40}"
ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$TOOLKIT_GIT_USERNAME" ;;
  *) printf '%s\\n' "$TOOLKIT_GIT_PASSWORD" ;;
esac
"""
TOKEN_USER = "x-access-token"  # GitHub's; GitHub, GitLab and Bitbucket take any user with a token
MASK = "******"


class GitSource(NamedTuple):
    url: str  # without credentials
    ref: Optional[str]
    subdirectory: Optional[str]
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def shown(self) -> str:
        return self.url + (f"@{self.ref}" if self.ref else "")


def parse(uri: str) -> GitSource:
    """Split ``git+URL@REF#subdirectory=path``; a ref is the part after the last ``@`` of the path."""
    text = uri[len("git+"):] if uri.startswith("git+") else uri
    text, _, fragment = text.partition("#")
    sub = parse_qs(fragment).get("subdirectory", [None])[0] if fragment else None
    if "://" in text:
        scheme_end = text.index("://") + 3
        slash = text.find("/", scheme_end)
        path_start = slash if slash >= 0 else len(text)
    else:  # scp form: user@host:path
        colon = text.find(":")
        if colon < 0:
            raise FetchError(f"{uri}: not a git URL; expected git+https://host/repo.git@REF or git+git@host:repo.git")
        path_start = colon + 1
    path = text[path_start:]
    ref = None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
        ref = ref or None
    url = text[:path_start] + path
    username = password = None
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:  # a secret in the URL: move it out, keep the URL clean
            username, password = unquote(parts.username or ""), unquote(parts.password)
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            url = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return GitSource(url=url, ref=ref, subdirectory=sub, username=username, password=password)


def credentials(source: GitSource, env: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    """(user, secret) from the URL, else the SDK's sagemaker_git_* settings."""
    if source.password is not None:
        return source.username or TOKEN_USER, source.password
    token = env.get("sagemaker_git_token")
    user = env.get("sagemaker_git_username")
    password = env.get("sagemaker_git_password")
    if password:
        return user or TOKEN_USER, password
    if token:
        return user or TOKEN_USER, token
    return None, None


@hookimpl
def toolkit_fetch_schemes() -> Sequence[str]:
    return ["git+https", "git+http", "git+ssh", "git+git", "git+file"]


@hookimpl
def toolkit_fetch_code(uri: str, dest: Path, settings: Mapping[str, str]) -> Optional[Path]:
    if not uri.startswith("git+"):
        return None
    import shutil
    import tempfile

    from toolkit import download

    source = parse(uri)
    git = shutil.which("git", path=settings.get("PATH"))
    if git is None:
        raise FetchError(f"{source.shown}: fetching git code needs the git command; install git in the image")
    user, secret = credentials(source, settings)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    helper_dir = Path(tempfile.mkdtemp(prefix="toolkit-git-"))
    try:
        runner = _Git(git, source, settings, user, secret, helper_dir)
        runner.clone(work / "repo")
        download.subfolder(work / "repo", source.subdirectory, source.shown)
        os.rename(work / "repo", dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(helper_dir, ignore_errors=True)
    return download.subfolder(dest, source.subdirectory, source.shown)


class _Git:
    def __init__(
        self, git: str, source: GitSource, env: Mapping[str, str], user: Optional[str], secret: Optional[str],
        helper_dir: Path,
    ) -> None:
        self.git = git
        self.source = source
        self.secret = secret
        self.env = {k: str(v) for k, v in env.items() if not k.startswith("sagemaker_")}
        self.env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")  # C: git's messages are matched below
        self.env.pop("GIT_DIR", None)
        self.env.pop("GIT_WORK_TREE", None)
        if secret is not None:
            helper = helper_dir / "askpass.sh"
            helper.write_text(ASKPASS)
            helper.chmod(0o700)  # owner only: it hands out the secret
            self.env.update(GIT_ASKPASS=str(helper), TOOLKIT_GIT_USERNAME=user or TOKEN_USER,
                            TOOLKIT_GIT_PASSWORD=secret)
            self.env.pop("SSH_ASKPASS", None)

    def run(self, *args: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        import subprocess

        # credential.helper= empties the helper list: nothing stored is used, nothing is saved
        # http.lowSpeed*: give up on an HTTP transfer slower than 1 KB/s for a minute instead of hanging
        cmd = [self.git, "-c", "credential.helper=", "-c", "advice.detachedHead=false",
               "-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60", *args]
        return subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def must(self, *args: str, cwd: Optional[Path] = None) -> None:
        proc = self.run(*args, cwd=cwd)
        if proc.returncode != 0:
            raise self.error(proc.stderr)

    def clone(self, repo: Path) -> None:
        ref = self.source.ref
        self.must("init", "-q", str(repo))
        self.must("remote", "add", "origin", self.source.url, cwd=repo)
        if ref is None:
            self.must("fetch", "-q", "--depth", "1", "origin", "HEAD", cwd=repo)
        else:
            proc = self.run("fetch", "-q", "--depth", "1", "origin", ref, cwd=repo)
            if proc.returncode != 0:
                if not re.fullmatch(SHA, ref) or self._auth_problem(proc.stderr):
                    raise self.error(proc.stderr)
                # an abbreviated SHA, or a server that does not serve SHAs by name: fetch it all
                log.info("%s: fetching the whole history to find commit %s", self.source.url, ref)
                full = self.run("fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=repo)
                if full.returncode != 0:
                    raise self.error(full.stderr)
                found = self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=repo)
                if found.returncode != 0:
                    raise FetchError(f"{self.source.shown}: no branch, tag or commit {ref!r} in the repository")
                self.must("checkout", "-q", "--detach", found.stdout.strip(), cwd=repo)
                self._log_head(repo)
                return
        self.must("checkout", "-q", "--detach", "FETCH_HEAD", cwd=repo)
        self._log_head(repo)

    def _log_head(self, repo: Path) -> None:
        head = self.run("rev-parse", "HEAD", cwd=repo).stdout.strip()
        log.info("%s: checked out commit %s", self.source.shown, head)

    @staticmethod
    def _auth_problem(stderr: str) -> bool:
        low = stderr.lower()
        return any(s in low for s in ("authentication failed", "could not read username", "could not read password",
                                      "terminal prompts disabled", "permission denied", " 401", " 403"))

    def mask(self, text: str) -> str:
        if self.secret:
            for form in {self.secret, quote(self.secret, safe="")}:
                text = text.replace(form, MASK)
        return text

    def error(self, stderr: str) -> FetchError:
        lines = [ln.strip() for ln in self.mask(stderr).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1] if lines else "git failed")
        detail = detail[len("fatal: "):] if detail.startswith("fatal: ") else detail
        shown = self.source.shown
        low = stderr.lower()
        if any(s in low for s in ("couldn't find remote ref", "not our ref", "unadvertised object")):
            return FetchError(f"{shown}: no branch, tag or commit {self.source.ref!r} in the repository ({detail})")
        if self._auth_problem(stderr):
            has = "the credentials given were rejected" if self.secret else "no credentials were given"
            return FetchError(f"{shown}: the repository needs authentication and {has}; set sagemaker_git_token "
                              f"(or sagemaker_git_username and sagemaker_git_password), or an SSH key for ssh URLs "
                              f"({detail})")
        if any(s in low for s in ("repository not found", "does not appear to be a git repository", " 404",
                                  "not exported")):
            return FetchError(f"{shown}: repository not found ({detail})")
        return FetchError(f"{shown}: git failed: {detail}")
