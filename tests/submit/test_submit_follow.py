"""``--wait``, ``--download``, Ctrl-C, ``toolkit logs`` and ``toolkit describe`` against moto's server.

moto does not run jobs: it creates each one already Completed. Here new jobs start InProgress
instead, and the test plays the service: it writes the hosts' log events to CloudWatch Logs (real
boto3 calls to moto's server), puts the results in S3, and then sets the job's status.
"""

from __future__ import annotations

import io
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import BIN, clean_environ
from localjobs import toolkit, unique
from submitjobs import IMAGE, ROLE


class Running:
    """``toolkit ARGS`` in the background, its stderr collected line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(BIN / "toolkit"), *args], env=clean_environ(**env), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.proc.poll() is None or text in self.stderr, f"exited {self.proc.returncode}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.stderr}"
            time.sleep(0.05)

    def finish(self, stdin: str = "", timeout: float = 60) -> int:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return self.proc.returncode


@pytest.fixture
def start_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """New training and processing jobs start InProgress, as on the service."""
    from moto.sagemaker.models import SageMakerModelBackend

    for kind in ("training", "processing"):
        original = getattr(SageMakerModelBackend, f"create_{kind}_job")

        def create(self: Any, *args: Any, _original: Callable = original, _kind: str = kind, **kwargs: Any) -> Any:
            job = _original(self, *args, **kwargs)
            setattr(job, f"{_kind}_job_status", "InProgress")
            if _kind == "training":
                job.secondary_status = "Training"
            return job
        monkeypatch.setattr(SageMakerModelBackend, f"create_{kind}_job", create)


def write_logs(s3_env: dict[str, str], group: str, streams: dict[str, list[str]]) -> None:
    import boto3

    logs = boto3.client("logs", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    for stream, messages in streams.items():
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def targz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def train_args(job: str, bucket: str) -> list[str]:
    return ["submit", "train", "--image", IMAGE, "--role", ROLE, "--instance-type", "ml.m5.large",
            "--instance-count", "2", "--channel", f"train=s3://{bucket}/data", "--output-path", f"s3://{bucket}/out",
            "--bucket", bucket, "--job-name", job]


def process_args(job: str, bucket: str, *options: str) -> list[str]:
    return ["submit", "process", "--image", IMAGE, "--role", ROLE, "--instance-type", "ml.m5.large",
            "--input", f"raw=s3://{bucket}/raw", "--output", "clean", "--bucket", bucket, "--job-name", job,
            *options, "--", "process", "prep.py"]


def test_wait_streams_every_hosts_logs_then_downloads(start_in_progress: None, backend: Any, env: dict, s3: Any,
                                                      bucket: str, tmp_path: Path) -> None:
    job = unique("wait")
    run = Running(*train_args(job, bucket), "--wait", "--download", str(tmp_path / "results"), env=env)
    run.wait_for(f"TrainingJob {job}: InProgress (Training)")
    write_logs(env, "/aws/sagemaker/TrainingJobs", {
        f"{job}/algo-1-1700000000": ["epoch 1 loss 0.5", "epoch 2 loss 0.25"],
        f"{job}/algo-2-1700000000": ["worker ready\nsecond line"]})
    run.wait_for("[algo-2] second line")  # shown while the job still runs
    model = targz({"weights.bin": b"\x00\x01"})
    s3.put_object(Bucket=bucket, Key=f"out/{job}/output/model.tar.gz", Body=model)
    s3.put_object(Bucket=bucket, Key=f"out/{job}/output/output.tar.gz", Body=targz({"metrics.json": b"{}"}))
    training = backend.training_jobs[job]
    training.training_job_status = training.secondary_status = "Completed"

    assert run.finish() == 0, run.stderr
    lines = run.lines
    assert lines.index("[algo-1] epoch 1 loss 0.5") < lines.index("[algo-1] epoch 2 loss 0.25")
    assert "[algo-2] worker ready" in lines
    assert lines.index("[algo-2] second line") < lines.index(f"TrainingJob {job}: Completed (Completed)")
    assert (tmp_path / "results" / "model.tar.gz").read_bytes() == model
    assert (tmp_path / "results" / "output.tar.gz").is_file()


def test_wait_exits_1_with_the_failure_reasons_first_line(start_in_progress: None, backend: Any, env: dict,
                                                          bucket: str) -> None:
    job = unique("fails")
    run = Running(*process_args(job, bucket, "--wait"), env=env)
    run.wait_for(f"ProcessingJob {job}: InProgress")
    processing = backend.processing_jobs[job]
    processing.failure_reason = "AlgorithmError: ValueError: column price is missing\nTraceback (most recent call last)"
    processing.processing_job_status = "Failed"

    assert run.finish() == 1, run.stderr
    assert run.lines[-1] == f"ProcessingJob {job}: Failed: AlgorithmError: ValueError: column price is missing"


@pytest.mark.parametrize("answer", ["y", "n"])
def test_ctrl_c_asks_whether_to_stop_the_job(start_in_progress: None, backend: Any, env: dict, bucket: str,
                                             answer: str) -> None:
    job = unique("interrupted")
    run = Running(*process_args(job, bucket, "--wait"), env=env)
    run.wait_for(f"ProcessingJob {job}: InProgress")
    run.proc.send_signal(signal.SIGINT)

    assert run.finish(stdin=f"{answer}\n") == 130, run.stderr
    assert f"Stop ProcessingJob {job} on SageMaker? [y/N]" in run.stderr
    assert f"toolkit logs {job} --wait" in run.lines[-1]
    assert backend.processing_jobs[job].processing_job_status == ("Stopped" if answer == "y" else "InProgress")


def test_logs_and_describe_of_a_job_started_elsewhere(env: dict, bucket: str) -> None:
    job = unique("elsewhere")
    assert toolkit(*process_args(job, bucket), env=env).returncode == 0
    write_logs(env, "/aws/sagemaker/ProcessingJobs", {f"{job}/algo-1-1700000000": ["prepared 10 rows"]})

    logs = toolkit("logs", job, env=env)
    assert logs.returncode == 0, logs.stderr
    assert logs.stderr.splitlines() == ["[algo-1] prepared 10 rows"]
    described = toolkit("describe", job, env=env)
    assert described.returncode == 0, described.stderr
    assert '"ProcessingJobStatus": "Completed"' in described.stdout
    missing = toolkit("describe", "no-such-job", env=env)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "toolkit describe: no training, processing or transform job named 'no-such-job' in us-east-1; "
        "check the name and the region (--region, AWS_REGION)"]
