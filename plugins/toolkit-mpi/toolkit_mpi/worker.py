"""The helper the MPI launcher runs on each host: ``python -m toolkit_mpi.worker master|worker``.

master: make sure the key exists, wait (bounded, logged) until every other host resolves and
accepts SSH, run ``mpirun`` (with the job's variables forwarded by ``-x``), then tell every
other host the exit code over SSH and exit with it.

worker: run sshd and wait until the master reports how the job ended, then exit with that code.
No fixed sleeps: the worker polls for the report, and gives up (exit 1, with the reason) when
mpirun's daemon on this host has gone and no report came within ``--report-grace`` seconds, or
when no daemon ever started within ``--start-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

from toolkit import Supervisor, signal_name
from toolkit_mpi import ssh

log = logging.getLogger("toolkit")
FORWARD_PREFIXES = ("SM_", "SAGEMAKER_", "NCCL_", "FI_", "AWS_", "TOOLKIT_", "OMP_", "PYTHON")
FORWARD_NAMES = ("PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "HOME", "LANG", "TZ")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STOP_GRACE = 110.0  # after a stop, how long mpirun gets to end the ranks before it is killed
SSHD_GRACE = 10.0


def forwarded(environ: Mapping[str, str], argv: Sequence[str]) -> list[str]:
    """``-x NAME`` for every variable the ranks on other hosts need (values stay out of argv)."""
    given = {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv[:-1]) if a == "-x"}
    names = sorted(n for n in environ if NAME.match(n) and n not in given
                   and (n.startswith(FORWARD_PREFIXES) or n in FORWARD_NAMES))
    return [part for n in names for part in ("-x", n)]


def report(hosts: Sequence[str], key: Path, port: int, state_dir: Path, code: int) -> None:
    """Write ``code`` into each host's status file over SSH, all hosts at once."""
    def one(host: str) -> None:
        path = ssh.status_path(state_dir, host)
        command = f"mkdir -p {state_dir} && echo {code} > {path}.tmp && mv {path}.tmp {path}"
        try:
            done = ssh.ssh(host, key, port, command, timeout=30)
            if done.returncode != 0:
                log.error("could not tell %s the job's exit code: %s", host, done.stderr.strip())
        except subprocess.TimeoutExpired:
            log.error("could not tell %s the job's exit code: ssh timed out", host)

    threads = [threading.Thread(target=one, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def missing_open_mpi(mpirun: str, environ: Mapping[str, str]) -> Optional[str]:
    """Why MPI cannot run on this host, as the failure file's first line, or None (every host
    checks: mpirun starts Open MPI's daemon on each one, and they all run the same image)."""
    if shutil.which(mpirun, path=environ.get("PATH")):
        return None
    return (f"mpi: Open MPI is not installed: no {mpirun!r} on PATH; install it in the image (Debian/Ubuntu: "
            f"apt-get install openmpi-bin openssh-server openssh-client), or turn sagemaker_mpi_enabled off")


def run_master(opts: argparse.Namespace, mpirun: list[str], environ: Mapping[str, str]) -> int:
    why = missing_open_mpi(mpirun[0], environ)
    if why:
        print(why, file=sys.stderr)
        return 1
    ssh_dir, state_dir = Path(opts.ssh_dir), Path(opts.state_dir)
    hosts = [h for h in opts.hosts.split(",") if h]
    others = hosts[1:]
    key = ssh.ensure_keys(ssh_dir) if others else ssh.key_path(ssh_dir)  # one host: no SSH at all
    deadline = time.monotonic() + opts.wait_seconds
    try:
        for host in others:
            ssh.wait_for_host(host, key, opts.port, deadline)
    except TimeoutError as exc:
        report(others, key, opts.port, state_dir, 1)  # the hosts that did come up can stop now
        print(f"mpi: {exc}; check that every host runs the same image and the network allows port "
              f"{opts.port} (TOOLKIT_MPI_WAIT_SECONDS={opts.wait_seconds:g})", file=sys.stderr)
        return 1
    argv = [mpirun[0], *forwarded(environ, mpirun), *mpirun[1:]]
    log.info("mpi: %d host(s) ready; starting mpirun", len(hosts))
    with Supervisor(STOP_GRACE) as supervisor:
        supervisor.start(argv, name="mpirun")
        done = supervisor.wait()
    code = done.children[0].exit_code or 0
    if done.signalled is not None:  # stopped from outside: say so with 128+N on every host, as the core does
        print(f"mpi: stopped by {signal_name(done.signalled)} (mpirun ended with code {code}); "
              f"stopping all {len(hosts)} host(s)", file=sys.stderr)
        code = 128 + done.signalled
    elif code != 0:
        print(f"mpi: mpirun exited with code {code}; the job failed on all {len(hosts)} host(s)", file=sys.stderr)
    report(others, key, opts.port, state_dir, code)
    return code


def run_worker(opts: argparse.Namespace) -> int:
    why = missing_open_mpi("mpirun", os.environ)
    if why:
        print(why, file=sys.stderr)
        return 1
    ssh_dir, state_dir = Path(opts.ssh_dir), Path(opts.state_dir)
    ssh.ensure_keys(ssh_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    status = ssh.status_path(state_dir, opts.host)
    status.unlink(missing_ok=True)
    try:
        ssh.wait_for(f"host {opts.master} name", lambda: None if ssh.resolves(opts.master) else "name does not resolve",
                     time.monotonic() + opts.wait_seconds)
    except TimeoutError as exc:
        print(f"mpi: {exc} (TOOLKIT_MPI_WAIT_SECONDS={opts.wait_seconds:g})", file=sys.stderr)
        return 1
    log.info("mpi: %s runs sshd on port %d and waits for %s's mpirun", opts.host, opts.port, opts.master)
    started, seen, gone_at = time.monotonic(), False, None
    ended: list[tuple[int, str]] = []  # the job's exit code on this host, and why

    def job_ended() -> Optional[str]:
        """Poll (the supervisor's stop_when): the master's report, or a reason to give up."""
        nonlocal seen, gone_at
        if ended:
            return None
        if status.is_file():
            text = status.read_text().strip()
            code = int(text) if text.lstrip("-").isdigit() else 1
            ended.append((code, f"the MPI job run by {opts.master} failed with exit code {code}"))
        elif ssh.running("orted"):
            seen, gone_at = True, None
        elif seen and gone_at is None:
            gone_at = time.monotonic()
        elif gone_at is not None and time.monotonic() - gone_at > opts.report_grace:
            ended.append((1, f"mpirun's daemon on this host ended but {opts.master} never reported the "
                             f"job's exit code within {opts.report_grace:g} s (did the master host die?)"))
        elif not seen and time.monotonic() - started > opts.start_timeout:
            ended.append((1, f"{opts.master} did not start mpirun on this host within "
                             f"{opts.start_timeout:g} s (TOOLKIT_MPI_START_TIMEOUT)"))
        return "the job ended" if ended else None

    with Supervisor(SSHD_GRACE, stop_when=job_ended, poll=0.2) as supervisor:
        sshd = supervisor.start(ssh.sshd_command(ssh_dir, opts.port, state_dir, name=opts.host),
                                stdin=subprocess.DEVNULL, name="sshd")
        done = supervisor.wait()
    if done.signalled is not None:
        code, reason = 128 + done.signalled, f"stopped by {signal_name(done.signalled)}"
    elif ended:
        code, reason = ended[0]
    else:
        code, reason = 1, f"sshd exited with code {sshd.exit_code}; {opts.master} cannot reach this host"
    if code == 0:
        log.info("mpi: the job run by %s succeeded", opts.master)
    else:
        print(f"mpi: {reason}", file=sys.stderr)
    return code


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    rest: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m toolkit_mpi.worker")
    parser.add_argument("role", choices=["master", "worker"])
    parser.add_argument("--hosts", default="", help="master: every host, master first")
    parser.add_argument("--host", default="", help="worker: this host")
    parser.add_argument("--master", default="", help="worker: the host that runs mpirun")
    parser.add_argument("--ssh-dir", required=True)
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--wait-seconds", type=float, default=300.0)
    parser.add_argument("--start-timeout", type=float, default=3600.0)
    parser.add_argument("--report-grace", type=float, default=60.0)
    return parser.parse_args(argv), rest


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    opts, rest = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s toolkit-mpi %(levelname)s %(message)s")
    environ = os.environ if environ is None else environ
    if opts.role == "master":
        if not rest:
            print("mpi: master needs the mpirun command after --", file=sys.stderr)
            return 2
        return run_master(opts, rest, environ)
    return run_worker(opts)


if __name__ == "__main__":
    sys.exit(main())
