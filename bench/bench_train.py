#!/usr/bin/env python3
"""Training start-up: our ``train`` against sagemaker-training's ``train``, side by side.

Runs, interleaved (A B C D E, A B C D E, ...), N times each after a warm-up, on the same
trivial script and the same kind of fake /opt/ml job (SDK-style JSON-encoded hyperparameters):

  peer     sagemaker-training 5.1.4 ``train`` (its own venv, built here on first use)
  ours     this project's ``train`` (the repo's .venv, or the interpreter running this script)
  floor    a bare Python parent that runs the same script as a child (train_floor.py)
  direct   ``python train.py --epochs 2 --lr 0.01`` with our Python
  direct (peer's Python)   the same with the peer's Python, for its own overhead

then reports medians, our overhead (ours - direct) and the ratio peer/ours against the targets
of issue 2 (overhead <= 0.06 s, >= 5x faster), the processes each tool starts (strace, when
present), and ``python -X importtime`` profiles of ``train --help`` and of a whole ``train``
run of ours. Results go to docs/benchmarks.md under ``## Training start-up`` (``--no-docs`` to
skip) and to WORKDIR/train-results-<date>.json.

sagemaker-training resolves every host with gethostbyname and waits until ``algo-1`` resolves:
as root, the whole benchmark re-runs itself in a private mount namespace (``unshare -m``) with
an /etc/hosts that maps algo-1 to 127.0.0.1; otherwise it sets SM_STUDIO_LOCAL_MODE=true for
the peer, which skips that check (sagemaker_training/entry_point.py).

Usage: python bench/bench_train.py [-n 20] [--warmup 2] [--workdir DIR] [--no-docs] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import train_peer as tp
from benchdoc import write_section

HERE = Path(__file__).resolve().parent
SECTION = "## Training start-up"
USER_ARGS = ["--epochs", "2", "--lr", "0.01"]
TARGET_OVERHEAD = 0.06
TARGET_RATIO = 5.0
HEAVY = ("boto3", "botocore", "flask", "waitress", "numpy")

TRAIN_SCRIPT = '''\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--lr", type=float, default=0.1)
a, _ = p.parse_known_args()
with open(os.path.join(os.environ.get("SM_MODEL_DIR", "/tmp"), "model.txt"), "w") as f:
    f.write("epochs=%d lr=%g\\n" % (a.epochs, a.lr))
'''
EXPECTED_MODEL = "epochs=2 lr=0.01\n"


@dataclass
class Case:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: Optional[Path]
    model_dir: Optional[Path]  # where the script writes model.txt; None: not a training run
    times: list[float] = field(default_factory=list)

    def run(self, capture: bool = False) -> subprocess.CompletedProcess:
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.run(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=out, text=True)


@dataclass
class Probe:
    """A profiling command run once per round, after the timed ones (same conditions); its
    stdout or stderr is kept for the summary."""

    key: str
    argv: list[str]
    env: dict[str, str]
    stream: str  # "stdout" or "stderr"
    outputs: list[str] = field(default_factory=list)

    def collect(self) -> None:
        proc = subprocess.run(self.argv, env=self.env, capture_output=True, text=True)
        self.outputs.append(getattr(proc, self.stream))


# --------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------


def hyperparameters(src: Path) -> dict[str, str]:
    return tp.sdk_encode({
        "epochs": 2,
        "lr": 0.01,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": str(src),
        "sagemaker_region": "us-east-1",
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": "toolkit-bench-train",
    })


def resource_config() -> dict:
    return {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
        "current_group_name": "homogeneousCluster",
        "current_instance_type": "ml.m5.large",
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large", "hosts": ["algo-1"]}
        ],
        "network_interface_name": "eth0",
    }


INPUT_DATA_CONFIG = {
    "train": {"ContentType": "text/csv", "TrainingInputMode": "File",
              "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
}


def build_cases(
    work: Path, peer_bin: Path, ours_bin: Path, studio_mode: bool, wheel_bin: Optional[Path],
    before: Optional[tuple[str, Path]] = None,
) -> list[Case]:
    jobs = work / "train-jobs"
    src = jobs / "src"
    shutil.rmtree(jobs, ignore_errors=True)
    src.mkdir(parents=True)
    (src / "train.py").write_text(TRAIN_SCRIPT)
    for name in ("peer", "ours", "ours-wheel", "ours-before"):
        tp.write_job(jobs / name, hyperparameters(src), INPUT_DATA_CONFIG, resource_config())
    for name in ("floor", "direct", "direct-peer"):
        (jobs / name / "model").mkdir(parents=True)

    peer_extra = {"SAGEMAKER_BASE_DIR": str(jobs / "peer")}
    if studio_mode:
        peer_extra["SM_STUDIO_LOCAL_MODE"] = "true"
    ours_py, peer_py = str(ours_bin / "python"), str(peer_bin / "python")

    def model_env(name: str) -> dict[str, str]:
        return tp.clean_environ({"SM_MODEL_DIR": str(jobs / name / "model")})

    cases = [
        Case("peer", "sagemaker-training 5.1.4 `train`", [str(peer_bin / "train")],
             tp.clean_environ(peer_extra), None, jobs / "peer" / "model"),
        Case("ours", "sagemaker-toolkit `train` (ours)", [str(ours_bin / "train")],
             tp.clean_environ({"SAGEMAKER_BASE_DIR": str(jobs / "ours")}), None, jobs / "ours" / "model"),
        Case("pass", "`python -c pass` (our Python: interpreter start-up)", [ours_py, "-c", "pass"],
             tp.clean_environ(), None, None),
        Case("floor", "floor: bare Python parent running the script as a child",
             [ours_py, str(HERE / "train_floor.py"), str(src), "train.py", *USER_ARGS],
             model_env("floor"), None, jobs / "floor" / "model"),
        Case("direct", "`python train.py ...` directly (our Python)", [ours_py, "train.py", *USER_ARGS],
             model_env("direct"), src, jobs / "direct" / "model"),
        Case("direct-peer", "`python train.py ...` directly (peer's Python)", [peer_py, "train.py", *USER_ARGS],
             model_env("direct-peer"), src, jobs / "direct-peer" / "model"),
    ]
    if wheel_bin:
        cases.insert(2, Case("ours-wheel", "sagemaker-toolkit `train`, wheel-installed in its own venv",
                             [str(wheel_bin / "train")],
                             tp.clean_environ({"SAGEMAKER_BASE_DIR": str(jobs / "ours-wheel")}), None,
                             jobs / "ours-wheel" / "model"))
    if before:
        ref, before_bin = before
        cases.insert(3 if wheel_bin else 2, Case(
            "ours-before", f"sagemaker-toolkit `train` at `{ref}` (before), wheel-installed in its own venv",
            [str(before_bin / "train")], tp.clean_environ({"SAGEMAKER_BASE_DIR": str(jobs / "ours-before")}),
            None, jobs / "ours-before" / "model"))
    return cases


def check_once(case: Case) -> None:
    """Each command must really run the job: exit 0 and the script's model file written."""
    if case.model_dir is None:
        return
    model = case.model_dir / "model.txt"
    if model.exists():
        model.unlink()
    started = time.perf_counter()
    proc = case.run(capture=True)
    took = time.perf_counter() - started
    if proc.returncode != 0 or not model.is_file() or model.read_text() != EXPECTED_MODEL:
        sys.exit(f"bench_train: {case.key} did not run the job (exit {proc.returncode}, {took:.1f} s):\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def measure(cases: list[Case], probes: list[Probe], runs: int, warmup: int) -> None:
    for i in range(warmup + runs):
        for case in cases:
            started = time.perf_counter()
            code = case.run().returncode
            took = time.perf_counter() - started
            if code != 0:
                sys.exit(f"bench_train: {case.key} exited {code} in round {i}")
            if i >= warmup:
                case.times.append(took)
        if i >= warmup:
            for probe in probes:
                probe.collect()
        if i >= warmup and (i - warmup + 1) % 5 == 0:
            tp.log(f"round {i - warmup + 1}/{runs}")


def wait_for_quiet(limit: float, patience: float = 600.0) -> None:
    """On a shared machine, wait until the 1-minute load average drops below ``limit``."""
    if limit <= 0:
        return
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        tp.log(f"load average {os.getloadavg()[0]:.2f} >= {limit}: waiting")
        time.sleep(15)


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def processes_started(case: Case, work: Path) -> Optional[dict]:
    """Processes a run forks and the programs it exec's, from one run under strace -f."""
    if not shutil.which("strace"):
        return None
    out = work / f"strace-{case.key}.txt"
    argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(out), *case.argv]
    subprocess.run(argv, env=case.env, cwd=case.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids, programs = set(), []
    for line in out.read_text().splitlines():
        m = re.match(r"(\d+)\s+execve\(\"([^\"]+)\".*= (-?\d+)", line)
        if m:
            pids.add(m.group(1))
            if m.group(3) == "0":
                programs.append(os.path.basename(m.group(2)))
    return {"processes": len(pids), "programs": programs}


def importtime(outputs: list[str]) -> dict:
    """Median ``-X importtime`` profile over several fresh interpreters' stderr: per module (self
    and cumulative microseconds) and per top-level package (sum of its modules' self time)."""
    selfs, cums = collections.defaultdict(list), collections.defaultdict(list)
    packages = collections.defaultdict(list)
    totals = []
    for err in outputs:
        per_pkg: collections.Counter = collections.Counter()
        total = 0
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            s, c, name = line[len("import time:"):].split("|")
            name = name.strip()
            selfs[name].append(int(s))
            cums[name].append(int(c))
            per_pkg[name.split(".")[0]] += int(s)
            total += int(s)
        totals.append(total)
        for pkg in set(packages) | set(per_pkg):
            packages[pkg].append(per_pkg.get(pkg, 0))
    med = statistics.median
    return {
        "total_ms": med(totals) / 1000,
        "modules": sorted(((k, med(cums[k]) / 1000, med(selfs[k]) / 1000) for k in cums), key=lambda t: -t[1]),
        "packages": sorted(((k, med(v) / 1000) for k, v in packages.items()), key=lambda t: -t[1]),
        "heavy": sorted({k for k in cums if k.split(".")[0] in HEAVY}),
    }


def cprofile_top(case: Case, work: Path, limit: int = 25) -> str:
    """cProfile of one run of our ``train`` (the parent only), top entries by cumulative time."""
    out = work / "train-ours.prof"
    python, script = str(Path(case.argv[0]).parent / "python"), case.argv[0]
    subprocess.run([python, "-m", "cProfile", "-o", str(out), script], env=case.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    code = ("import pstats, sys; p = pstats.Stats(sys.argv[1]); p.strip_dirs(); "
            f"p.sort_stats('cumulative').print_stats({limit})")
    return subprocess.run([python, "-c", code, str(out)], capture_output=True, text=True).stdout


def phases(outputs: list[str]) -> dict:
    """Median time of each phase of our start-up, from train_phases.py's JSON outputs."""
    samples: dict[str, list[float]] = collections.defaultdict(list)
    refs: dict[str, list[float]] = collections.defaultdict(list)
    errors: dict[str, str] = {}
    for out in outputs:
        try:
            got = json.loads(out)
        except ValueError:
            return {"error": "train_phases.py printed no JSON", "phases": {}}
        for name, ms in got["phases"].items():
            samples[name].append(ms)
        for name, ms in got.get("reference", {}).items():
            refs[name].append(ms)
        errors.update(got["errors"])
    return {"phases": {k: statistics.median(v) for k, v in samples.items()},
            "reference": {k: statistics.median(v) for k, v in refs.items()}, "errors": errors}


def wheel_install(work: Path, ours_bin: Path, source: Path = tp.REPO, name: str = "ours-wheel") -> Optional[Path]:
    """Our package as users get it: built as a wheel from ``source`` (this checkout) and installed
    (with its dependencies) in a fresh venv of our Python, not editable. Returns the venv's bin/."""
    base = subprocess.run([str(ours_bin / "python"), "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True).stdout.strip() or str(ours_bin / "python")
    venv = work / name
    wheels = work / f"{name}-dist"
    shutil.rmtree(wheels, ignore_errors=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    try:
        if not (venv / "bin" / "python").is_file():
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)], check=True,
                       stdout=subprocess.DEVNULL)
        wheel = next(wheels.glob("*.whl"))
        subprocess.run([*pip, "install", "--force-reinstall", "--no-deps", str(wheel)], check=True)
        subprocess.run([*pip, "install", str(wheel)], check=True)  # dependencies, once
    except (subprocess.CalledProcessError, StopIteration) as exc:
        tp.log(f"skipping the wheel-installed case {name}: {exc}")
        return None
    return venv / "bin"


def before_install(work: Path, ours_bin: Path, ref: str) -> Path:
    """The checkout's commit ``ref`` (the code before a change), wheel-installed like ours."""
    source = work / "ours-before-src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(tp.REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    shutil.rmtree(work / "ours-before", ignore_errors=True)  # a fresh venv: ref may differ from the last run's
    bin_dir = wheel_install(work, ours_bin, source, "ours-before")
    if bin_dir is None:
        sys.exit(f"bench_train: could not install {ref} for --before")
    return bin_dir


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def venv_facts(python: str) -> str:
    """How many distributions the venv holds and which toolkit plugins it installs (what the
    entry-point scan walks and loads)."""
    code = ("import importlib.metadata as m; d = list(m.distributions()); "
            "p = sorted({e.name for x in d for e in x.entry_points if e.group == 'toolkit.plugins'}); "
            "print(len(d), ','.join(p))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.split()
    if not out:
        return "?"
    plugins = out[1] if len(out) > 1 else "none"
    return f"{out[0]} distributions; installed toolkit plugins: {plugins}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def render(results: dict) -> str:
    r = results
    med = {k: v["median"] for k, v in r["cases"].items()}
    lines = [
        SECTION,
        "",
        "`python bench/bench_train.py` (issue 2). The same trivial `train.py` (argparse, writes one file) on a",
        "fake /opt/ml job with SDK-style JSON-encoded hyperparameters, every command run "
        f"{r['runs']} times interleaved",
        f"after {r['warmup']} warm-up rounds; wall time per run, stdout/stderr to /dev/null.",
        "",
        f"- Date: {r['date']}; machine: {r['machine']}",
        f"- Ours: sagemaker-toolkit {r['ours_version']} on Python {r['ours_python']}; peer: "
        f"{tp.PEER_SPEC} on Python {r['peer_python']} (its own venv)",
        f"- `algo-1` resolution for the peer: {r['hosts_method']}",
        f"- Our venvs: the project's .venv (editable install): {r['venvs']['ours']}"
        + (f"; the wheel venv: {r['venvs']['ours-wheel']}" if "ours-wheel" in r["venvs"] else ""),
        f"- Load average (1 min) before / after the timed runs: {r['load'][0]:.2f} / {r['load'][1]:.2f} "
        "(the machine is shared: compare figures from one run, not across runs)",
        "",
        "| command | median | p25 - p75 | / floor | processes (programs exec'd) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for c in r["cases"].values():
        procs = c.get("strace")
        ptxt = "-" if not procs else (
            f"{procs['processes']} ({', '.join(_counted(procs['programs']))})")
        lines.append(f"| {c['label']} | {fmt_ms(c['median'])} | {fmt_ms(c['p25'])} - {fmt_ms(c['p75'])} | "
                     f"{c['median'] / med['floor']:.1f}x | {ptxt} |")
    ov, ratio = r["overhead"], r["ratio"]
    dev = (f"the project's development venv (editable install, {r['venvs']['ours']})")
    if r.get("wheel_overhead") is not None:
        # Like for like: the peer runs from its own fresh venv, so ours is judged the same way (and
        # that is how an image installs it); the development venv is reported beside it.
        judged, judged_ratio = r["wheel_overhead"], r["wheel_ratio"]
        how = "ours wheel-installed in its own fresh venv, as the peer is and as an image installs it"
    else:
        judged, judged_ratio, how = ov, ratio, dev
    ok = "met" if judged <= TARGET_OVERHEAD else "MISSED"
    ok2 = "met" if judged_ratio >= TARGET_RATIO else "MISSED"
    lines += [
        "",
        f"Targets, judged like for like ({how}):",
        "",
        f"- **Our overhead** (our `train` minus the script run directly, medians): **{fmt_ms(judged)}**; "
        f"target <= {fmt_ms(TARGET_OVERHEAD)}: {ok}.",
        f"- **Peer / ours**: **{judged_ratio:.1f}x**; target >= {TARGET_RATIO:.0f}x: {ok2}. The peer's own "
        f"overhead (its `train` minus the script on its Python): {fmt_ms(r['peer_overhead'])}.",
    ]
    if r.get("before"):
        b = r["before"]
        lines.append(
            f"- Before the change (`{b['ref']}`, wheel-installed the same way, timed in the same rounds): overhead "
            f"{fmt_ms(b['overhead'])}, peer / ours {b['ratio']:.1f}x.")
    if r.get("wheel_overhead") is not None:
        lines.append(
            f"- In {dev}: overhead {fmt_ms(ov)} (median of the paired per-round differences: "
            f"{fmt_ms(r['overhead_paired'])}; {fmt_ms(med['ours'] - med['floor'])} above the two-process "
            f"floor), peer / ours {ratio:.1f}x. It is slower by the editable install's path entry, its "
            f"many distributions to scan for entry points and the two launcher plugins `train` imports.")
    lines += [
        "",
        "What keeps our start-up short (each step's gain, in instructions counted with callgrind, is in "
        "its commit message): `train` registers every built-in but the serving-only ones (codecs, inference, "
        "waitress); the fetchers import what a download needs (boto3, tempfile, tarfile, shutil...) only when "
        "one happens; its log lines are written directly unless a plugin loads `logging` (22 M instructions, "
        "about 3.6 ms, less); the job's process is started by the core's one supervisor with "
        "`subprocess.Popen(cwd=...)` (importing subprocess, threading, selectors and locale costs about 22 M "
        "instructions, but `os.posix_spawn` cannot set the child's folder without changing ours, and glibc's "
        "leaves its internal signals 32 and 33 ignored in the child, where a Popen child has none: "
        "tests/test_supervisor.py holds ours to Popen's); `ServingEnv` and `ProcessingEnv`, frozen dataclasses "
        "whose methods are generated and compiled when the class is built (about 22 M instructions), live in "
        "modules `train` does not import; the cyclic garbage "
        "collector is off from the first import and does not walk the modules imported at start-up, nor, at "
        "exit, what is left (`gc.freeze`). "
        "An editable install is a `.pth` path entry, not an import hook (setup.cfg `package_dir`). What is "
        "left is mostly the interpreter and pluggy (which imports inspect, ast and typing), pathlib and json.",
        "",
        "Where our overhead goes: phases of our `train`'s own process, in the order it meets them, each "
        f"timed with perf_counter inside fresh interpreters (bench/train_phases.py, median of {r['runs']} runs); "
        "a module imported by an earlier phase is not counted again.",
        "",
        "| phase | median |",
        "| --- | ---: |",
        f"| interpreter start-up (`python -c pass`, row of the table above) | {fmt_ms(med['pass'])} |",
    ]
    ph = r["phases"]
    for name, ms in ph.get("phases", {}).items():
        err = ph.get("errors", {}).get(name)
        lines.append(f"| {name} | {'failed: ' + err[:80] if err else f'{ms:.1f} ms'} |")
    if ph.get("error"):
        lines.append(f"| (train_phases.py failed: {ph['error'][:100]}) | |")
    total = sum(ph.get("phases", {}).values()) / 1000
    for name, ms in ph.get("reference", {}).items():
        lines.append(f"| ({name}: not added, part of the row above) | ({ms:.1f} ms) |")
    lines.append(f"| the rest: fetch, launch, supervise, outcome file, logging (our overhead minus the rows "
                 f"above) | {fmt_ms(r['overhead'] - med['pass'] - total)} |")
    lines += [
        "",
        f"Where our `train` spends its import time (`python -X importtime`, median of "
        f"{r['runs']} runs, one per round; total self time of all imports). Modules loaded with "
        "`importlib.import_module` (the built-in plugins, entry-point plugins) are not listed by "
        "`-X importtime`, only what they import: the phases above cover them.",
        "",
        "| | total | top packages (self ms) | heavy modules imported |",
        "| --- | ---: | --- | --- |",
    ]
    for key, title in (("help", "`train --help`"), ("run", "`train` (whole job)"),
                       ("peer_run", "peer's `train` (whole job)")):
        it = r["importtime"].get(key)
        if not it:
            continue
        top = ", ".join(f"{p} {ms:.1f}" for p, ms in it["packages"][:8])
        heavy = ", ".join(sorted({h.split(".")[0] for h in it["heavy"]})) or "none"
        lines.append(f"| {title} | {it['total_ms']:.0f} ms | {top} | {heavy} |")
    it = r["importtime"]["help"]
    lines += [
        "",
        "Top modules of ours for `train --help` by cumulative import time (ms, self in brackets):",
        "",
        "```",
        *(f"{cum:7.1f}  [{self_:5.1f}]  {name}" for name, cum, self_ in it["modules"][:15]),
        "```",
        "",
    ]
    return "\n".join(lines)


def _counted(programs: list[str]) -> list[str]:
    counts = collections.Counter(programs)
    return [f"{p} x{n}" if n > 1 else p for p, n in counts.items()]


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=tp.DEFAULT_WORKDIR)
    ap.add_argument("--ours", help="bin/ folder holding our `train` and `python` (default: the repo's .venv)")
    ap.add_argument("--peer-python", help="Python to build the peer's venv from (default: pyenv 3.11, 3.12)")
    ap.add_argument("--quiet-load", type=float, default=0.0,
                    help="first wait (up to 10 min) until the 1-minute load average is below this (0: do not wait)")
    ap.add_argument("--no-wheel", action="store_true", help="skip the wheel-installed case of ours")
    ap.add_argument("--before", metavar="GIT_REF",
                    help="also time this commit of the checkout (e.g. main), wheel-installed, in the same "
                         "interleaved rounds: the before/after of a change from one run")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of our train even if targets are met")
    ap.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                    help="only rewrite the docs section from a saved train-results-*.json")
    args = ap.parse_args()
    if args.render:
        write_section(render(json.loads(args.render.read_text())))
        return
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)

    peer_bin = tp.ensure_peer_venv(work, args.peer_python)
    studio_mode = False
    if not tp.resolves("algo-1"):
        if tp.can_unshare():
            tp.reexec_in_namespace(work, ["algo-1"])
            if not tp.resolves("algo-1"):
                sys.exit("bench_train: algo-1 still does not resolve inside the private mount namespace")
        else:
            studio_mode = True
    hosts_method = ("SM_STUDIO_LOCAL_MODE=true (skips the peer's DNS wait)" if studio_mode else
                    "private mount namespace, /etc/hosts maps algo-1 to 127.0.0.1 (all commands run in it)"
                    if os.environ.get(tp.NAMESPACE_MARK) == "1" else "resolves on this machine")
    ours_bin = tp.our_bin(args.ours)
    wheel_bin = None if args.no_wheel else wheel_install(work, ours_bin)
    before = None
    if args.before:
        before_ref = subprocess.run(["git", "-C", str(tp.REPO), "rev-parse", "--short", args.before],
                                    capture_output=True, text=True, check=True).stdout.strip()
        before = (f"{args.before} {before_ref}" if before_ref != args.before else args.before,
                  before_install(work, ours_bin, args.before))
    cases = build_cases(work, peer_bin, ours_bin, studio_mode, wheel_bin, before)
    for case in cases:
        check_once(case)
    ours_py = str(ours_bin / "python")
    wait_for_quiet(args.quiet_load)
    tp.log(f"measuring {len(cases)} commands x {args.runs} runs, interleaved")
    load_before = os.getloadavg()[0]
    ours_env = next(c.env for c in cases if c.key == "ours")
    peer_env = next(c.env for c in cases if c.key == "peer")
    train_script = str(ours_bin / "train")
    probes = [
        Probe("help", [ours_py, "-X", "importtime", train_script, "--help"], ours_env, "stderr"),
        Probe("run", [ours_py, "-X", "importtime", train_script], ours_env, "stderr"),
        Probe("peer_run", [str(peer_bin / "python"), "-X", "importtime", str(peer_bin / "train")], peer_env,
              "stderr"),
        Probe("phases", [ours_py, str(HERE / "train_phases.py")], ours_env, "stdout"),
    ]
    measure(cases, probes, args.runs, args.warmup)
    load_after = os.getloadavg()[0]

    by = {c.key: c for c in cases}
    med = {c.key: statistics.median(c.times) for c in cases}
    results: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "runs": args.runs,
        "warmup": args.warmup,
        "ours_python": tp.python_version(ours_py),
        "peer_python": tp.python_version(str(peer_bin / "python")),
        "ours_version": subprocess.run([ours_py, "-c", "import toolkit; print(toolkit.__version__)"],
                                       capture_output=True, text=True).stdout.strip(),
        "hosts_method": hosts_method,
        "venvs": {"ours": venv_facts(ours_py),
                  **({"ours-wheel": venv_facts(str(wheel_bin / "python"))} if wheel_bin else {})},
        "load": [load_before, load_after],
        "cases": {c.key: {"label": c.label, "argv": c.argv, "median": med[c.key], "p25": quantile(c.times, 0.25),
                          "p75": quantile(c.times, 0.75), "times": c.times} for c in cases},
        "overhead": med["ours"] - med["direct"],
        "overhead_paired": statistics.median(a - b for a, b in zip(by["ours"].times, by["direct"].times)),
        "peer_overhead": med["peer"] - med["direct-peer"],
        "ratio": med["peer"] / med["ours"],
        "wheel_overhead": med["ours-wheel"] - med["direct"] if "ours-wheel" in med else None,
        "wheel_ratio": med["peer"] / med["ours-wheel"] if "ours-wheel" in med else None,
        "before": {"ref": before[0], "overhead": med["ours-before"] - med["direct"],
                   "ratio": med["peer"] / med["ours-before"]} if before else None,
    }
    for case in cases:
        if case.key in ("peer", "ours"):
            results["cases"][case.key]["strace"] = processes_started(case, work)
    results["importtime"] = {p.key: importtime(p.outputs) for p in probes if p.key != "phases"}
    results["phases"] = phases(probes[-1].outputs)
    missed = results["overhead"] > TARGET_OVERHEAD or results["ratio"] < TARGET_RATIO
    if missed or args.profile:
        results["cprofile"] = cprofile_top(by["ours"], work)

    text = render(results)
    print(text)
    if "cprofile" in results:
        print("cProfile of our train (parent process), by cumulative time:\n" + results["cprofile"])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = work / f"train-results-{stamp}.json"
    out.write_text(json.dumps(results, indent=1))
    tp.log(f"raw results: {out}")
    if not args.no_docs:
        write_section(text)


if __name__ == "__main__":
    main()
