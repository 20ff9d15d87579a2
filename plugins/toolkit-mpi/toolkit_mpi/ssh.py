"""SSH between the job's hosts: keys, sshd, and waiting until a peer answers.

Every host of a job runs the same image, so a key pair found (or made) in the key folder is the
same on every host when it was made at image build time or when the folder is shared; the key is
made here, once (under a lock), only when it is missing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger("toolkit")
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


KEY_NAMES = ("id_ed25519", "id_rsa", "id_ecdsa")


def key_path(ssh_dir: Path) -> Path:
    """The key the job uses: the first one the folder has, else the one ``ensure_keys`` makes."""
    for name in KEY_NAMES:
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    return ssh_dir / KEY_NAMES[0]


def ensure_keys(ssh_dir: Path) -> Path:
    """The private key in ``ssh_dir`` (made if absent), with its public half authorized."""
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(ssh_dir / ".toolkit-keys.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = key_path(ssh_dir)
        if not key.is_file():
            log.info("no SSH key in %s: generating %s", ssh_dir, key.name)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True, stdin=subprocess.DEVNULL)
        public = Path(f"{key}.pub").read_text().strip()
        authorized = ssh_dir / "authorized_keys"
        present = authorized.read_text().splitlines() if authorized.is_file() else []
        if public not in (line.strip() for line in present):
            with open(authorized, "a") as fh:
                fh.write(public + "\n")
            authorized.chmod(0o600)
    return key


def ensure_host_keys() -> None:
    """sshd refuses to start without host keys; images often ship none (ssh-keygen -A makes them)."""
    if not list(Path("/etc/ssh").glob("ssh_host_*_key")):
        log.info("no SSH host keys: generating them")
        subprocess.run(["ssh-keygen", "-A"], check=True, stdin=subprocess.DEVNULL)


def sshd_command(ssh_dir: Path, port: int, state_dir: Path, name: str = "host") -> list[str]:
    """sshd in the foreground (a child we can stop), accepting the job's key for root."""
    ensure_host_keys()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation folder
    config = state_dir / f"sshd_config.{name}"
    config.write_text("\n".join([
        f"Port {port}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {ssh_dir}/authorized_keys",
        "StrictModes no",
        "UsePAM no",
        "PidFile none",
        "AcceptEnv *",
        "MaxStartups 100:30:200",
        "LogLevel ERROR",
        "",
    ]))
    return ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


def ssh(host: str, key: Path, port: int, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-p", str(port), "-i", str(key), *SSH_OPTIONS, host, command],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def wait_for(what: str, check: Callable[[], Optional[str]], deadline: float) -> None:
    """Retry ``check`` (None = ready, else why not) with a growing pause, logging each miss,
    until ``deadline`` (time.monotonic()); then raise TimeoutError with the last reason."""
    pause, attempt = 0.1, 0
    while True:
        attempt += 1
        reason = check()
        if reason is None:
            if attempt > 1:
                log.info("%s: ready after %d attempts", what, attempt)
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: still not ready after {attempt} attempts: {reason}")
        if attempt == 1 or attempt % 10 == 0:
            log.info("%s: not ready (%s), retrying", what, reason)
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 2.0)


def wait_for_host(host: str, key: Path, port: int, deadline: float) -> None:
    """Until ``host`` resolves and accepts our key over SSH."""
    wait_for(f"host {host} name", lambda: None if resolves(host) else "name does not resolve", deadline)

    def can_ssh() -> Optional[str]:
        try:
            done = ssh(host, key, port, "true", timeout=10)
        except subprocess.TimeoutExpired:
            return "ssh timed out"
        return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["ssh failed"])[-1]

    wait_for(f"host {host} ssh", can_ssh, deadline)


def status_path(state_dir: Path, host: str) -> Path:
    """Where the master writes the job's exit code for ``host`` to pick up."""
    return state_dir / f"{host}.exit"


def our_netns() -> Optional[str]:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def running(name: str) -> list[int]:
    """PIDs of processes called ``name`` in this host's network namespace (so that several
    hosts emulated on one machine do not see each other's)."""
    mine, found = our_netns(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as fh:
                if fh.read().strip() != name:
                    continue
            if os.readlink(f"/proc/{entry.name}/ns/net") == mine:
                found.append(int(entry.name))
        except OSError:
            continue
    return found
