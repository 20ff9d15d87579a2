"""``toolkit local train`` end to end: the real console script, the real ``train``, and moto's S3
server over HTTP; the layout in S3 (or on disk) is checked object by object afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from localjobs import describe, s3_bytes, s3_keys, tar_members, toolkit, unique, write_script

REPORT = """
import json, os, sys
cfg = os.environ["SM_INPUT_CONFIG_DIR"]
load = lambda name: json.load(open(os.path.join(cfg, name)))
files = {}
for ch in sorted(json.loads(os.environ["SM_CHANNELS"])):
    root = os.environ["SM_CHANNEL_" + ch.upper()]
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            files[ch + "/" + os.path.relpath(p, root)] = open(p).read()
model = os.environ["SM_MODEL_DIR"]
report = {"argv": sys.argv[1:], "hps": load("hyperparameters.json"), "rc": load("resourceconfig.json"),
          "idc": load("inputdataconfig.json"), "files": files, "job": os.environ.get("TRAINING_JOB_NAME"),
          "color": os.environ.get("COLOR")}
host = report["rc"]["current_host"]
json.dump(report, open(os.path.join(model, host + ".json"), "w"))
os.makedirs(os.path.join(model, "sub"), exist_ok=True)
open(os.path.join(model, "sub", "weights.bin"), "wb").write(bytes([0, 1, 2]))
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.txt"), "w").write("loss=0.1\\n")
"""

FILE_ENTRY = {"ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
              "RecordWrapperType": "None"}


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("local")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_script(src, REPORT)
    write_script(src / "helper", "VALUE = 1\n", "util.py")
    return src


def channel(name: str, uri: str, **extra: Any) -> dict[str, Any]:
    s3 = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": extra.pop("distribution",
                                                                                        "FullyReplicated")}
    return {"ChannelName": name, "DataSource": {"S3DataSource": s3}, "ContentType": "text/csv", **extra}


def test_s3_job_layout_object_by_object(s3: Any, s3_env: dict, bucket: str, source: Path, tmp_path: Path) -> None:
    for key, body in {"data/train/a.csv": "1,2\n", "data/train/sub/b.csv": "3,4\n", "data/test/c.csv": "5,6\n"}.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    job = unique("s3job")
    request = {"TrainingJobName": job, "RoleArn": "arn:aws:iam::000000000000:role/ignored",
               "AlgorithmSpecification": {"TrainingInputMode": "File"},
               "HyperParameters": {"epochs": "3"}, "Environment": {"COLOR": "blue"},
               "InputDataConfig": [channel("train", f"s3://{bucket}/data/train"),
                                   channel("test", f"s3://{bucket}/data/test/")],
               "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out"},
               "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
               "StoppingCondition": {"MaxRuntimeInSeconds": 600}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--request", str(tmp_path / "request.json"), "--source-dir", str(source),
                   "--entry-point", "train.py", "--workdir", str(work), env=s3_env)
    assert proc.returncode == 0, proc.stderr
    assert f"job {job}: Completed (exit code 0)" in proc.stderr

    assert s3_keys(s3, bucket) == {
        "data/train/a.csv", "data/train/sub/b.csv", "data/test/c.csv",
        f"{job}/source/sourcedir.tar.gz",
        f"out/{job}/output/model.tar.gz",
        f"out/{job}/output/output.tar.gz",
    }
    assert set(tar_members(s3_bytes(s3, bucket, f"{job}/source/sourcedir.tar.gz"))) == {"train.py", "helper/util.py"}
    model = tar_members(s3_bytes(s3, bucket, f"out/{job}/output/model.tar.gz"))
    assert set(model) == {"algo-1.json", "sub/weights.bin"}
    assert model["sub/weights.bin"] == bytes([0, 1, 2])
    assert tar_members(s3_bytes(s3, bucket, f"out/{job}/output/output.tar.gz")) == {"metrics.txt": b"loss=0.1\n"}

    report = json.loads(model["algo-1.json"])
    assert report["argv"] == ["--epochs", "3"]
    assert report["hps"] == {
        "epochs": "3", "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": f'"s3://{bucket}/{job}/source/sourcedir.tar.gz"',
        "sagemaker_container_log_level": "20", "sagemaker_job_name": f'"{job}"', "sagemaker_region": '"us-east-1"'}
    assert report["files"] == {"train/a.csv": "1,2\n", "train/sub/b.csv": "3,4\n", "test/c.csv": "5,6\n"}
    assert report["idc"] == {"train": FILE_ENTRY, "test": FILE_ENTRY}
    assert report["rc"]["current_host"] == "algo-1" and report["rc"]["hosts"] == ["algo-1"]
    assert report["rc"]["current_instance_type"] == "ml.m5.large"
    assert report["job"] == job and report["color"] == "blue"

    answer = describe(work, job)
    assert answer["TrainingJobStatus"] == "Completed" and "FailureReason" not in answer
    assert answer["ModelArtifacts"] == {"S3ModelArtifacts": f"s3://{bucket}/out/{job}/output/model.tar.gz"}
    assert [t["Status"] for t in answer["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert answer["HyperParameters"]["sagemaker_program"] == '"train.py"'


def test_local_paths_only(tmp_path: Path, source: Path) -> None:
    data = tmp_path / "data"
    write_script(data, "1,2\n", "a.csv")
    out = tmp_path / "out"
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "local-only", "--source-dir", str(source), "--entry-point",
                   "train.py", "--channel", f"train=file://{data}", "--output-path", f"file://{out}",
                   "--hyperparameter", "lr=0.5", "--workdir", str(work))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "local-only/output/model.tar.gz", "local-only/output/output.tar.gz", "local-only/source/sourcedir.tar.gz"]
    model = tar_members((out / "local-only/output/model.tar.gz").read_bytes())
    report = json.loads(model["algo-1.json"])
    assert report["files"] == {"train/a.csv": "1,2\n"}
    assert report["argv"] == ["--lr", "0.5"]
    assert describe(work, "local-only")["ModelArtifacts"]["S3ModelArtifacts"] == str(
        out / "local-only/output/model.tar.gz")
    # the host's /opt/ml stays for inspection, laid out as the platform does
    base = work / "local-only" / "algo-1"
    assert (base / "output" / "success").is_file()
    assert json.loads((base / "input/config/hyperparameters.json").read_text())["lr"] == "0.5"


PIPE = """
import json, os, stat
d = os.environ["SM_INPUT_DATA_DIR"]
seen = {}
for epoch in range(3):
    path = os.path.join(d, "train_%d" % epoch)
    seen["fifo_%d" % epoch] = stat.S_ISFIFO(os.stat(path).st_mode)
    with open(path, "rb") as f:
        seen["epoch_%d" % epoch] = f.read().decode()
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "pipe.json"), "w"))
"""


def test_pipe_mode_streams_one_epoch_per_fifo(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    parts = {"pipe/part-0": "alpha\n", "pipe/part-1": "beta\n", "pipe/part-2": "gamma\n" * 1000}
    for key, body in parts.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    src = tmp_path / "src"
    write_script(src, PIPE)
    proc = toolkit("local", "train", "--job-name", "pipe-job", "--source-dir", str(src), "--entry-point",
                   "train.py", "--channel", f"train=s3://{bucket}/pipe/", "--input-mode", "Pipe",
                   "--output-path", f"s3://{bucket}/out", "--workdir", str(tmp_path / "work"), env=s3_env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(tar_members(s3_bytes(s3, bucket, "out/pipe-job/output/model.tar.gz"))["pipe.json"])
    whole = "".join(parts[k] for k in sorted(parts))
    assert seen == {"fifo_0": True, "fifo_1": True, "fifo_2": True,
                    "epoch_0": whole, "epoch_1": whole, "epoch_2": whole}
    assert "algo-1 train 3 epoch(s)" in proc.stderr
    config = json.loads((tmp_path / "work/pipe-job/algo-1/input/config/inputdataconfig.json").read_text())
    assert config["train"]["TrainingInputMode"] == "Pipe"


CHECKPOINT = """
import json, os, time
import boto3
cfg = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")))
state = os.path.join(cfg["LocalPath"], "state.json")
step = json.load(open(state))["step"] if os.path.exists(state) else 0
json.dump({"step": step + 1}, open(state, "w"))
json.dump({"resumed_from": step}, open(os.path.join(os.environ["SM_MODEL_DIR"], "resume.json"), "w"))
# the checkpoint must reach S3 while this job still runs
bucket, _, prefix = cfg["S3Uri"][len("s3://"):].partition("/")
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for _ in range(100):
    body = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    if body and json.loads(s3.get_object(Bucket=bucket, Key=prefix + "/state.json")["Body"].read())["step"] == step + 1:
        break
    time.sleep(0.1)
else:
    raise SystemExit("checkpoint not uploaded during the run")
"""


def test_checkpoint_resumed_across_two_runs(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, CHECKPOINT)
    env = {**s3_env, "TOOLKIT_LOCAL_SYNC_SECONDS": "0.2"}
    for run, job in enumerate(("ckpt-first", "ckpt-second")):
        proc = toolkit("local", "train", "--job-name", job, "--source-dir", str(src), "--entry-point", "train.py",
                       "--checkpoint-s3-uri", f"s3://{bucket}/checkpoints/exp", "--output-path",
                       f"s3://{bucket}/out", "--workdir", str(tmp_path / "work"), env=env)
        assert proc.returncode == 0, proc.stderr
        resume = json.loads(tar_members(s3_bytes(s3, bucket, f"out/{job}/output/model.tar.gz"))["resume.json"])
        assert resume == {"resumed_from": run}
        assert json.loads(s3_bytes(s3, bucket, "checkpoints/exp/state.json")) == {"step": run + 1}
    answer = describe(tmp_path / "work", "ckpt-second")
    assert answer["CheckpointConfig"] == {"S3Uri": f"s3://{bucket}/checkpoints/exp", "LocalPath": "/opt/ml/checkpoints"}


def test_two_hosts_each_see_their_own_resourceconfig(s3: Any, s3_env: dict, bucket: str, source: Path,
                                                     tmp_path: Path) -> None:
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"shards/part-{i}.csv", Body=f"{i}\n".encode())
    s3.put_object(Bucket=bucket, Key="shared/all.csv", Body=b"all\n")
    request = {"TrainingJobName": "two-hosts", "ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.c5.xlarge"},
               "InputDataConfig": [channel("train", f"s3://{bucket}/shards/", distribution="ShardedByS3Key"),
                                   channel("test", f"s3://{bucket}/shared/")],
               "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out"}}
    proc = toolkit("local", "train", "--request", "-", "--source-dir", str(source), "--entry-point", "train.py",
                   "--workdir", str(tmp_path / "work"), env=s3_env, stdin=json.dumps(request))
    assert proc.returncode == 0, proc.stderr
    model = tar_members(s3_bytes(s3, bucket, "out/two-hosts/output/model.tar.gz"))
    assert set(model) == {"algo-1.json", "algo-2.json", "sub/weights.bin"}
    reports = {h: json.loads(model[f"{h}.json"]) for h in ("algo-1", "algo-2")}
    for host, report in reports.items():
        assert report["rc"]["current_host"] == host
        assert report["rc"]["hosts"] == ["algo-1", "algo-2"]
        assert report["rc"]["instance_groups"][0]["hosts"] == ["algo-1", "algo-2"]
        assert report["files"]["test/all.csv"] == "all\n"
    assert sorted(k for k in reports["algo-1"]["files"] if k.startswith("train/")) == [
        "train/part-0.csv", "train/part-2.csv"]
    assert sorted(k for k in reports["algo-2"]["files"] if k.startswith("train/")) == [
        "train/part-1.csv", "train/part-3.csv"]
    assert "algo-1 | " in proc.stderr and "algo-2 | " in proc.stderr
    assert "hosts: algo-1 exit 0, algo-2 exit 0" in proc.stderr


FAIL = """
import os
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "partial.txt"), "w").write("half")
raise ValueError("bad learning rate")
"""


def test_failed_job_reports_failure_reason(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, FAIL)
    write_script(tmp_path / "data", "x\n", "a.csv")
    out, work = tmp_path / "out", tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "fails", "--source-dir", str(src), "--entry-point", "train.py",
                   "--channel", f"train={tmp_path / 'data'}", "--output-path", str(out), "--workdir", str(work))
    assert proc.returncode == 1
    answer = describe(work, "fails")
    assert answer["TrainingJobStatus"] == "Failed"
    assert answer["FailureReason"].startswith("AlgorithmError: ValueError: bad learning rate")
    assert len(answer["FailureReason"].encode()) <= 1024
    assert "ModelArtifacts" not in answer
    assert not (out / "fails/output/model.tar.gz").exists()
    assert tar_members((out / "fails/output/output.tar.gz").read_bytes()) == {"partial.txt": b"half"}
    assert "FailureReason: AlgorithmError: ValueError: bad learning rate" in proc.stderr


STOPPABLE = """
import os, signal, sys, time
def stop(signum, frame):
    open(os.path.join(os.environ["SM_MODEL_DIR"], "stopped.txt"), "w").write("saved on SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(60)
"""

STUBBORN = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(os.environ["SM_MODEL_DIR"], "pid"), "w").write(str(os.getpid()))
time.sleep(60)
"""


def test_max_runtime_sends_sigterm(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, STOPPABLE)
    out, work = tmp_path / "out", tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "too-long", "--source-dir", str(src), "--entry-point",
                   "train.py", "--max-run", "3", "--output-path", str(out), "--workdir", str(work), timeout=30)
    # (3 s, not 1: under load the script must have set its handler before the stop comes)
    # the script saved its model and exited 0 on SIGTERM: the job is Stopped (train exits 128+15,
    # a stop is never a success) and the model it saved is uploaded all the same
    assert proc.returncode == 143, proc.stderr
    assert "job too-long: Stopped (exit code 143)" in proc.stderr
    answer = describe(work, "too-long")
    assert (answer["TrainingJobStatus"], answer["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert tar_members((out / "too-long/output/model.tar.gz").read_bytes()) == {"stopped.txt": b"saved on SIGTERM"}
    assert "MaxRuntimeInSeconds (3 s) reached" in proc.stderr


def test_sigkill_after_the_grace_period_kills_the_whole_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, STUBBORN)
    work = tmp_path / "work"
    proc = toolkit("local", "train", "--job-name", "stubborn", "--source-dir", str(src), "--entry-point",
                   "train.py", "--max-run", "1", "--kill-after", "1", "--output-path", str(tmp_path / "out"),
                   "--workdir", str(work), timeout=30)
    assert proc.returncode == 137, proc.stderr
    assert describe(work, "stubborn")["SecondaryStatus"] == "MaxRuntimeExceeded"
    pid = int((work / "stubborn/algo-1/model/pid").read_text())
    stat = Path(f"/proc/{pid}/stat")

    def gone() -> bool:  # SIGKILL is sent; a process may take a moment to finish exiting (seen in CI: 'R')
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(gone, 10, f"process {pid} of the killed job to be gone")


def test_package_prints_the_sdk_hyperparameters(s3: Any, s3_env: dict, bucket: str, source: Path) -> None:
    proc = toolkit("package", "--source-dir", str(source), "--entry-point", "train.py", "--code-location",
                   f"s3://{bucket}/code", "--job-name", "pkg-job", "--hyperparameter", "epochs=2", env=s3_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "epochs": "2", "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": f'"s3://{bucket}/code/pkg-job/source/sourcedir.tar.gz"',
        "sagemaker_container_log_level": "20", "sagemaker_job_name": '"pkg-job"', "sagemaker_region": '"us-east-1"'}
    assert s3_keys(s3, bucket) == {"code/pkg-job/source/sourcedir.tar.gz"}


def test_package_generates_the_job_name_as_the_sdk(tmp_path: Path, source: Path) -> None:
    proc = toolkit("package", "--source-dir", str(source), "--entry-point", "train.py", "--output-path",
                   str(tmp_path / "out"), "--image", "123.dkr.ecr.us-east-1.amazonaws.com/my-trainer:1.0")
    assert proc.returncode == 0, proc.stderr
    name = json.loads(json.loads(proc.stdout)["sagemaker_job_name"])
    assert name.startswith("my-trainer-") and len(name) == len("my-trainer-2026-01-01-00-00-00-000")
    assert (tmp_path / "out" / name / "source" / "sourcedir.tar.gz").is_file()
    assert os.path.getsize(tmp_path / "out" / name / "source" / "sourcedir.tar.gz") > 0


FASTFILE = """
import json, os, stat
root = os.environ["SM_CHANNEL_TRAIN"]
mode = stat.S_IMODE(os.stat(os.path.join(root, "a.csv")).st_mode)
inter = os.environ["SM_OUTPUT_INTERMEDIATE_DIR"]
os.makedirs(os.path.join(inter, "epoch-1"), exist_ok=True)
open(os.path.join(inter, "epoch-1", "curve.csv"), "w").write("0.5\\n")
json.dump({"mode": oct(mode), "data": open(os.path.join(root, "a.csv")).read()},
          open(os.path.join(os.environ["SM_MODEL_DIR"], "fastfile.json"), "w"))
"""


def test_fastfile_intermediate_and_uncompressed_model(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="ff/a.csv", Body=b"1\n")
    src = tmp_path / "src"
    write_script(src, FASTFILE)
    request = {"OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out", "CompressionType": "NONE"}}
    proc = toolkit("local", "train", "--request", "-", "--job-name", "ff-job", "--source-dir", str(src),
                   "--entry-point", "train.py", "--channel", f"train=s3://{bucket}/ff", "--input-mode", "FastFile",
                   "--hyperparameter", f"sagemaker_s3_output=s3://{bucket}/out", "--workdir", str(tmp_path / "work"),
                   env=s3_env, stdin=json.dumps(request))
    assert proc.returncode == 0, proc.stderr
    assert s3_keys(s3, bucket) == {"ff/a.csv", "ff-job/source/sourcedir.tar.gz",
                                   "out/ff-job/output/model/fastfile.json", "out/ff-job/output/output.tar.gz",
                                   "out/ff-job/output/intermediate/epoch-1/curve.csv"}
    seen = json.loads(s3_bytes(s3, bucket, "out/ff-job/output/model/fastfile.json"))
    assert seen == {"mode": "0o444", "data": "1\n"}
    assert s3_bytes(s3, bucket, "out/ff-job/output/intermediate/epoch-1/curve.csv") == b"0.5\n"
    answer = describe(tmp_path / "work", "ff-job")
    assert answer["ModelArtifacts"] == {"S3ModelArtifacts": f"s3://{bucket}/out/ff-job/output/model/"}


def test_container_entrypoint_replaces_train_in_process(tmp_path: Path) -> None:
    import sys

    code = ("import os, sys; base = os.environ['SAGEMAKER_BASE_DIR']; "
            "open(os.path.join(base, 'model', 'argv.json'), 'w').write(__import__('json').dumps(sys.argv[1:]))")
    request = {"AlgorithmSpecification": {"ContainerEntrypoint": [sys.executable, "-c", code],
                                          "ContainerArguments": ["--mode", "two words"]}}
    out = tmp_path / "out"
    proc = toolkit("local", "train", "--request", "-", "--job-name", "entry", "--output-path", str(out),
                   "--workdir", str(tmp_path / "work"), stdin=json.dumps(request))
    assert proc.returncode == 0, proc.stderr
    model = tar_members((out / "entry/output/model.tar.gz").read_bytes())
    assert json.loads(model["argv.json"]) == ["--mode", "two words"]
