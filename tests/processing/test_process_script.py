"""The ``process`` console script, run for real on a processing job's folder (SAGEMAKER_BASE_DIR),
as a processing container's ContainerEntrypoint runs it."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, clean_environ, make_wheel, scratch_venv

REPORT = """
import json, os, sys
names = [k for k in os.environ if k.startswith("SM_PROCESSING") or k in ("SM_CURRENT_HOST", "SM_HOSTS")]
out = os.environ["SM_PROCESSING_OUTPUT_REPORT"]
json.dump({"argv": sys.argv[1:], "env": {k: os.environ[k] for k in names}, "cwd": os.getcwd()},
          open(os.path.join(out, "seen.json"), "w"))
"""


class ProcessingJob:
    """A processing job's /opt/ml as the platform lays it out, under a temporary folder."""

    def __init__(self, root: Path, hosts: tuple[str, ...] = ("algo-1",)) -> None:
        self.base = root / "ml"
        self.code = self.base / "processing" / "input" / "code"
        self.out = self.base / "processing" / "output" / "report"
        for folder in (self.base / "config", self.code, self.out, self.base / "processing" / "input" / "raw-data"):
            folder.mkdir(parents=True, exist_ok=True)
        config = {"ProcessingJobName": "prep-1",
                  "ProcessingInputs": [
                      {"InputName": "raw-data", "S3Input": {"LocalPath": "/opt/ml/processing/input/raw-data",
                                                            "S3Uri": "s3://b/raw"}},
                      {"InputName": "code", "S3Input": {"LocalPath": "/opt/ml/processing/input/code",
                                                        "S3Uri": "s3://b/prep-1/input/code/prep.py"}}],
                  "ProcessingOutputConfig": {"Outputs": [
                      {"OutputName": "report", "S3Output": {"LocalPath": "/opt/ml/processing/output/report",
                                                            "S3Uri": "s3://b/out", "S3UploadMode": "EndOfJob"}}]}}
        (self.base / "config" / "processingjobconfig.json").write_text(json.dumps(config))
        (self.base / "config" / "resourceconfig.json").write_text(
            json.dumps({"current_host": hosts[-1], "hosts": list(hosts)}))

    @property
    def message(self) -> Path:
        return self.base / "output" / "message"

    def script(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def run(self, *argv: str, python: str = "", cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
        command = ([python, "-c", "from toolkit.scripts import process_main; process_main()"] if python
                   else [str(BIN / "process")])
        return subprocess.run([*command, *argv], env=clean_environ(SAGEMAKER_BASE_DIR=str(self.base), **extra),
                              cwd=str(cwd or self.code), capture_output=True, text=True, timeout=120)

    def seen(self) -> dict[str, Any]:
        return json.loads((self.out / "seen.json").read_text())


@pytest.fixture
def pjob(tmp_path: Path) -> ProcessingJob:
    return ProcessingJob(tmp_path)


def test_script_gets_its_arguments_whole_and_the_jobs_facts(pjob: ProcessingJob) -> None:
    script = pjob.script("prep.py", REPORT)
    proc = pjob.run(str(script), "--label", "a b", "'quoted'", "")
    assert proc.returncode == 0, proc.stderr
    seen = pjob.seen()
    assert seen["argv"] == ["--label", "a b", "'quoted'", ""]
    inputs = pjob.base / "processing" / "input"
    assert seen["env"] == {
        "SM_PROCESSING_JOB_NAME": "prep-1",
        "SM_PROCESSING_JOB_CONFIG": str(pjob.base / "config" / "processingjobconfig.json"),
        "SM_PROCESSING_INPUTS": json.dumps({"raw-data": str(inputs / "raw-data"), "code": str(inputs / "code")},
                                           separators=(",", ":"), sort_keys=True),
        "SM_PROCESSING_OUTPUTS": json.dumps({"report": str(pjob.out)}, separators=(",", ":")),
        "SM_PROCESSING_INPUT_RAW-DATA": str(inputs / "raw-data"),
        "SM_PROCESSING_INPUT_RAW_DATA": str(inputs / "raw-data"),
        "SM_PROCESSING_INPUT_CODE": str(inputs / "code"),
        "SM_PROCESSING_OUTPUT_REPORT": str(pjob.out),
        "SM_CURRENT_HOST": "algo-1", "SM_HOSTS": '["algo-1"]',
    }
    assert not pjob.message.exists()


@pytest.mark.parametrize(("name", "text", "mode", "argv"), [
    ("prep.sh", 'printf \'{"argv": ["%s"], "env": {}, "cwd": "x"}\' "$1" > "$SM_PROCESSING_OUTPUT_REPORT/seen.json"\n',
     0o644, ["prep.sh", "a b"]),
    ("tool", '#!/bin/sh\nprintf \'{"argv": ["%s"], "env": {}, "cwd": "x"}\' "$1" > '
             '"$SM_PROCESSING_OUTPUT_REPORT/seen.json"\n', 0o755, ["tool", "a b"]),
    ("pkg/mod.py", REPORT, 0o644, ["pkg.mod", "a b"]),
])
def test_shell_scripts_executables_and_modules(pjob: ProcessingJob, name: str, text: str, mode: int,
                                               argv: list[str]) -> None:
    pjob.script(name, text, mode)
    proc = pjob.run(*argv)
    assert proc.returncode == 0, proc.stderr
    assert pjob.seen()["argv"] == ["a b"]


def test_requirements_beside_the_script_are_installed(pjob: ProcessingJob, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "procdep", "VALUE = 'installed'\n")
    pjob.script("requirements.txt", f"--no-index\n--find-links {wheels}\nprocdep\n")
    pjob.script("prep.py", "import os, procdep\nopen(os.path.join(os.environ['SM_PROCESSING_OUTPUT_REPORT'], "
                           "'dep'), 'w').write(procdep.VALUE)\n")
    python = scratch_venv(tmp_path / "venv")
    proc = pjob.run(str(pjob.code / "prep.py"), python=str(python))
    assert proc.returncode == 0, proc.stderr
    assert (pjob.out / "dep").read_text() == "installed"


def test_a_sourcedir_archive_beside_the_entry_is_extracted_and_run(pjob: ProcessingJob) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in {"prep.py": "from helper import VALUE\n" + REPORT, "helper.py": "VALUE = 1\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    (pjob.code / "sourcedir.tar.gz").write_bytes(buf.getvalue())
    proc = pjob.run("prep.py", "x")
    assert proc.returncode == 0, proc.stderr
    assert pjob.seen()["argv"] == ["x"]
    assert not (pjob.code / "prep.py").exists()  # extracted elsewhere: the input folder is the platform's


def test_failure_writes_the_message_error_line_first_within_1kb(pjob: ProcessingJob) -> None:
    pjob.script("prep.py", "import sys\nfor i in range(300):\n    print('noise ü', i, file=sys.stderr)\n"
                           "raise ValueError('column ¿price? is missing')\n")
    proc = pjob.run("prep.py")
    assert proc.returncode == 1
    data = pjob.message.read_bytes()
    assert len(data) <= 1024
    text = data.decode("utf-8")
    assert text.splitlines()[0] == "ValueError: column ¿price? is missing"
    assert "Exit code: 1" in text


def test_bad_entry_point_is_explained_in_the_message(pjob: ProcessingJob) -> None:
    proc = pjob.run("nope.py")
    assert proc.returncode == 2
    assert "entry point 'nope.py' is not in" in pjob.message.read_text()
    proc = pjob.run()
    assert proc.returncode == 2
    assert pjob.message.read_text().startswith("no entry point: run `process SCRIPT [ARGS...]`")


def test_help_belongs_to_process_only_before_the_script(pjob: ProcessingJob) -> None:
    assert pjob.run("--help").stdout.startswith("Usage: process SCRIPT")
    pjob.script("prep.py", REPORT)
    proc = pjob.run("prep.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert pjob.seen()["argv"] == ["--help"]


def test_sigterm_reaches_the_script(pjob: ProcessingJob) -> None:
    ready, saved = pjob.out / "ready", pjob.out / "saved"
    pjob.script("prep.py", f"import signal, sys, time\n"
                           f"def stop(*_):\n    open({str(saved)!r}, 'w').write('yes')\n    sys.exit(143)\n"
                           f"signal.signal(signal.SIGTERM, stop)\nopen({str(ready)!r}, 'w').write('')\n"
                           f"time.sleep(60)\n")
    proc = subprocess.Popen([str(BIN / "process"), "prep.py"], cwd=str(pjob.code),
                            env=clean_environ(SAGEMAKER_BASE_DIR=str(pjob.base)), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 143
    assert saved.read_text() == "yes"


AWS_IMPORTS = """
import json, os
from sagemaker_containers.beta.framework import encoders
from sagemaker_inference import content_types
from sagemaker_training import logging_config
logging_config.get_logger().info("preparing")
with open(os.path.join(os.environ["SM_PROCESSING_OUTPUT_REPORT"], "rows.csv"), "w") as f:
    f.write(encoders.encode([[1, 2], [3, 4]], content_types.CSV))
"""


def test_the_aws_packages_stand_ins_import_in_the_command(pjob: ProcessingJob) -> None:
    # as in a training job: code written for the AWS containers imports their packages
    pytest.importorskip("numpy")
    pjob.script("prep.py", AWS_IMPORTS)
    proc = pjob.run("prep.py")
    assert proc.returncode == 0, proc.stderr
    assert (pjob.out / "rows.csv").read_text() == "1,2\n3,4\n"
    pjob.script("prep.py", "from sagemaker_training import entry_point\n")
    proc = pjob.run("prep.py")
    assert proc.returncode == 1
    assert ("NotCovered: sagemaker_training.entry_point is not covered by sagemaker-toolkit's stand-in for "
            "sagemaker_training") in pjob.message.read_text().splitlines()[0]


def test_process_start_up_stays_light() -> None:
    code = ("import sys\nsys.argv = ['process', '--help']\nfrom toolkit import scripts\n"
            "try:\n    scripts.process_main()\nexcept SystemExit:\n    pass\n"
            "from toolkit import processing\nprint(' '.join(sys.modules))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert not loaded & {"boto3", "botocore", "flask", "click", "logging"}, loaded
