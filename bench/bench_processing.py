#!/usr/bin/env python3
"""A trivial processing job end to end, beside ``toolkit local train``'s trivial training job:

- ``toolkit local process`` in-process (config files, one local input, a private /opt/ml per host,
  ``process prep.py``, the output uploaded, the describe file);
- ``toolkit local train`` of the same one-line script (bench_local.py's job A);
- ``process`` alone on a ready processing folder, and ``python prep.py`` directly.

Every run is a fresh process, the methods interleaved; medians are printed and, with --write,
replace the ``## Processing jobs`` section of docs/benchmarks.md.

  python bench/bench_processing.py [--reps 10] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_local import BIN, TRIVIAL, timed
from benchdoc import write_section

from toolkit.testing import clean_environ

PREP = """import os
open(os.path.join(os.environ.get("SM_PROCESSING_OUTPUT_OUT", "."), "done.txt"), "w").write("processed")
"""


def lay_out_process(base: Path) -> None:
    (base / "config").mkdir(parents=True)
    (base / "processing" / "output" / "out").mkdir(parents=True)
    config = {"ProcessingJobName": "ready", "ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "out", "S3Output": {"LocalPath": "/opt/ml/processing/output/out", "S3Uri": "/tmp/x"}}]}}
    (base / "config" / "processingjobconfig.json").write_text(json.dumps(config))
    (base / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))


def bench(work: Path, reps: int) -> dict[str, list[float]]:
    src, data = work / "src", work / "data"
    src.mkdir(parents=True)
    data.mkdir()
    (src / "prep.py").write_text(PREP)
    (src / "train.py").write_text(TRIVIAL)
    (data / "a.csv").write_text("1,2\n")
    times: dict[str, list[float]] = {"direct": [], "process": [], "local process": [], "local train": []}
    for rep in range(reps):
        out = work / f"direct-{rep}"
        out.mkdir()
        times["direct"].append(timed([sys.executable, "prep.py"], clean_environ(SM_PROCESSING_OUTPUT_OUT=str(out)),
                                     src)[0])
        base = work / f"ready-{rep}" / "ml"
        lay_out_process(base)
        times["process"].append(timed([str(BIN / "process"), str(src / "prep.py")],
                                      clean_environ(SAGEMAKER_BASE_DIR=str(base)))[0])
        times["local process"].append(timed(
            [str(BIN / "toolkit"), "local", "process", "--job-name", f"proc-{rep}", "--input", f"raw={data}",
             "--input", f"code={src}", "--output", "out", "--output-path", str(work / "out"), "--workdir",
             str(work / "jobs"), "--", "process", "/opt/ml/processing/input/code/prep.py"], clean_environ())[0])
        times["local train"].append(timed(
            [str(BIN / "toolkit"), "local", "train", "--job-name", f"train-{rep}", "--source-dir", str(src),
             "--entry-point", "train.py", "--channel", f"train={data}", "--output-path", str(work / "out"),
             "--workdir", str(work / "jobs")], clean_environ())[0])
        print(json.dumps({k: round(v[-1], 3) for k, v in times.items()}), flush=True)
    return times


def report(times: dict[str, list[float]], reps: int) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        ("`toolkit local process` (in-process, one input, one output, `process prep.py`)", "local process"),
        ("`toolkit local train` of the same one-line script", "local train"),
        ("`process prep.py` alone on a ready processing folder", "process"),
        ("`python prep.py` directly", "direct"),
    ]
    lines = ["## Processing jobs", "",
             f"`python bench/bench_processing.py --reps {reps}`: a trivial processing job end to end, each run a "
             f"fresh process, medians of {reps} (this machine: {os.cpu_count()} cores, shared).", "",
             "| run | median |", "| --- | --- |"]
    for label, key in rows:
        lines.append(f"| {label} | {med[key] * 1000:.0f} ms |")
    load = os.getloadavg()[0]
    lines += ["", f"A processing job end to end takes {(med['local process'] - med['local train']) * 1000:+.0f} ms "
              f"against the same trivial training job; `process` adds {(med['process'] - med['direct']) * 1000:.0f} "
              f"ms to the script (interpreter, plugins, the supervisor). Load average at the end of the run: "
              f"{load:.1f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench-processing"))
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args()
    work = Path(args.work) / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    table = report(bench(work, args.reps), args.reps)
    print(table)
    if args.write:
        write_section(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
