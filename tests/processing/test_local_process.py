"""``toolkit local process`` end to end: the real console scripts (``toolkit``, ``process``) and
moto's S3 server over HTTP; the bucket is checked key for key afterwards."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, clean_environ
from localjobs import describe, s3_bytes, s3_keys, toolkit, unique

pytestmark = pytest.mark.skipif(subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0,
                                reason="in-process processing jobs need a private mount namespace (unshare -m)")

PREP = """
import json, os, sys
base = "/opt/ml/processing"
seen = {"argv": sys.argv[1:], "host": os.environ["SM_CURRENT_HOST"], "job": os.environ["SM_PROCESSING_JOB_NAME"],
        "color": os.environ.get("COLOR"), "files": {}}
for name, path in json.loads(os.environ["SM_PROCESSING_INPUTS"]).items():
    if os.path.isdir(path):
        for d, _, fs in os.walk(path):
            for f in fs:
                p = os.path.join(d, f)
                seen["files"][name + "/" + os.path.relpath(p, path)] = open(p).read()
out = base + "/output/clean"
os.makedirs(out + "/sub", exist_ok=True)
json.dump(seen, open(os.path.join(out, seen["host"] + ".json"), "w"))
open(out + "/sub/rows.csv", "w").write("1,2\\n")
"""


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("proc")
    s3.create_bucket(Bucket=name)
    return name


def s3_input(name: str, uri: str, local: str = "", **more: str) -> dict[str, Any]:
    return {"InputName": name, "AppManaged": False, "S3Input": {
        "S3Uri": uri, "LocalPath": local or f"/opt/ml/processing/input/{name}", "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", **more}}


def s3_output(name: str, uri: str, mode: str = "EndOfJob") -> dict[str, Any]:
    return {"OutputName": name, "AppManaged": False,
            "S3Output": {"S3Uri": uri, "LocalPath": f"/opt/ml/processing/output/{name}", "S3UploadMode": mode}}


def request(job: str, inputs: list, outputs: list, entrypoint: list, count: int = 1, **more: Any) -> dict[str, Any]:
    return {"ProcessingJobName": job, "RoleArn": "arn:aws:iam::000000000000:role/ignored",
            "AppSpecification": {"ImageUri": "toolkit-cpu:latest", "ContainerEntrypoint": entrypoint},
            "ProcessingInputs": inputs, "ProcessingOutputConfig": {"Outputs": outputs},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": count, "InstanceType": "ml.m5.large",
                                                      "VolumeSizeInGB": 30}},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}, **more}


def run(tmp_path: Path, req: dict[str, Any], env: dict, *extra: str,
        timeout: float = 180) -> subprocess.CompletedProcess:
    path = tmp_path / f"{req['ProcessingJobName']}.json"
    path.write_text(json.dumps(req))
    return toolkit("local", "process", "--request", str(path), "--in-process", "--workdir", str(tmp_path / "work"),
                   *extra, env=env, timeout=timeout)


def put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_file_inputs_and_end_of_job_outputs_key_for_key(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    job = unique("prep")
    put(s3, bucket, {"raw/a.csv": b"a\n", "raw/sub/b.csv": b"b\n", f"{job}/input/code/prep.py": PREP.encode()})
    req = request(job, [s3_input("raw", f"s3://{bucket}/raw"),
                        s3_input("code", f"s3://{bucket}/{job}/input/code/prep.py", "/opt/ml/processing/input/code")],
                  [s3_output("clean", f"s3://{bucket}/{job}/output/clean")],
                  ["process", "/opt/ml/processing/input/code/prep.py"],
                  Environment={"COLOR": "blue"})
    req["AppSpecification"]["ContainerArguments"] = ["--ratio", "0.5 0.5"]
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 0, proc.stderr
    assert f"output clean (EndOfJob): 2 file(s) to s3://{bucket}/{job}/output/clean" in proc.stderr
    assert {k for k in s3_keys(s3, bucket) if k.startswith(f"{job}/output/")} == {
        f"{job}/output/clean/algo-1.json", f"{job}/output/clean/sub/rows.csv"}
    seen = json.loads(s3_bytes(s3, bucket, f"{job}/output/clean/algo-1.json"))
    assert seen["argv"] == ["--ratio", "0.5 0.5"]
    assert seen["files"] == {"raw/a.csv": "a\n", "raw/sub/b.csv": "b\n", "code/prep.py": PREP}
    assert seen["job"] == job and seen["color"] == "blue"
    answer = describe(tmp_path / "work", job)
    assert answer["ProcessingJobStatus"] == "Completed"
    assert "ExitMessage" not in answer and "FailureReason" not in answer
    assert answer["ProcessingJobArn"].endswith(f":processing-job/{job}")
    assert answer["ProcessingEndTime"] >= answer["ProcessingStartTime"] >= answer["CreationTime"]
    assert not Path("/opt/ml").exists()  # the job's /opt/ml was its own


def test_sharded_by_s3_key_over_two_hosts(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    job = unique("shard")
    put(s3, bucket, {f"raw/{n}.csv": n.encode() for n in "abcd"} | {"code/prep.py": PREP.encode()})
    req = request(job, [s3_input("raw", f"s3://{bucket}/raw/", S3DataDistributionType="ShardedByS3Key"),
                        s3_input("code", f"s3://{bucket}/code")],
                  [s3_output("clean", f"s3://{bucket}/{job}/clean")],
                  ["process", "/opt/ml/processing/input/code/prep.py"], count=2)
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 0, proc.stderr
    one = json.loads(s3_bytes(s3, bucket, f"{job}/clean/algo-1.json"))["files"]
    two = json.loads(s3_bytes(s3, bucket, f"{job}/clean/algo-2.json"))["files"]
    assert {k: v for k, v in one.items() if k.startswith("raw/")} == {"raw/a.csv": "a", "raw/c.csv": "c"}
    assert {k: v for k, v in two.items() if k.startswith("raw/")} == {"raw/b.csv": "b", "raw/d.csv": "d"}


def test_manifest_file_input(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    job = unique("manifest")
    manifest = json.dumps([{"prefix": f"s3://{bucket}/lake/"}, "2024/a.csv", "2025/c.csv"]).encode()
    put(s3, bucket, {"lake/2024/a.csv": b"a", "lake/2024/b.csv": b"b", "lake/2025/c.csv": b"c",
                     "lists/m.json": manifest, "code/prep.py": PREP.encode()})
    req = request(job, [s3_input("raw", f"s3://{bucket}/lists/m.json", S3DataType="ManifestFile"),
                        s3_input("code", f"s3://{bucket}/code")],
                  [s3_output("clean", f"s3://{bucket}/{job}/clean")],
                  ["process", "/opt/ml/processing/input/code/prep.py"])
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(s3_bytes(s3, bucket, f"{job}/clean/algo-1.json"))["files"]
    assert {k: v for k, v in files.items() if k.startswith("raw/")} == {"raw/2024/a.csv": "a", "raw/2025/c.csv": "c"}


PIPE = """
import os
data = open("/opt/ml/processing/input/rows_0", "rb").read()
again = open("/opt/ml/processing/input/rows_1", "rb").read()
open("/opt/ml/processing/output/clean/read.txt", "wb").write(data + b"|" + again)
"""


def test_pipe_input_gzip_decompressed(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    job = unique("pipe")
    put(s3, bucket, {"rows/1.csv.gz": gzip.compress(b"one\n"), "rows/2.csv.gz": gzip.compress(b"two\n"),
                     "code/pipe.py": PIPE.encode()})
    req = request(job, [s3_input("rows", f"s3://{bucket}/rows", S3InputMode="Pipe", S3CompressionType="Gzip"),
                        s3_input("code", f"s3://{bucket}/code")],
                  [s3_output("clean", f"s3://{bucket}/{job}/clean")],
                  ["python3", "/opt/ml/processing/input/code/pipe.py"])
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 0, proc.stderr
    assert s3_bytes(s3, bucket, f"{job}/clean/read.txt") == b"one\ntwo\n|one\ntwo\n"


CONTINUOUS = """
import os, time
out = "/opt/ml/processing/output/live"
open(os.path.join(out, "early.txt"), "w").write("early")
while not os.path.exists(os.path.join(out, "go")):
    time.sleep(0.1)
"""


def test_continuous_output_is_uploaded_before_the_job_ends(s3: Any, s3_env: dict, bucket: str,
                                                           tmp_path: Path) -> None:
    job = unique("live")
    put(s3, bucket, {"code/live.py": CONTINUOUS.encode()})
    req = request(job, [s3_input("code", f"s3://{bucket}/code")],
                  [s3_output("live", f"s3://{bucket}/{job}/live", "Continuous")],
                  ["python3", "/opt/ml/processing/input/code/live.py"])
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    work = tmp_path / "work"
    proc = subprocess.Popen([str(BIN / "toolkit"), "local", "process", "--request", str(path), "--in-process",
                             "--workdir", str(work)], env=clean_environ(**s3_env, TOOLKIT_LOCAL_SYNC_SECONDS="0.2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while f"{job}/live/early.txt" not in s3_keys(s3, bucket):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "early.txt never reached S3 while the job ran"
            time.sleep(0.2)
        assert proc.poll() is None  # the job is still running
        (work / job / "algo-1" / "processing" / "output" / "live" / "go").write_text("")
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert s3_bytes(s3, bucket, f"{job}/live/early.txt") == b"early"


def test_failing_script_exit_message_and_nothing_uploaded(s3: Any, s3_env: dict, bucket: str,
                                                         tmp_path: Path) -> None:
    job = unique("fail")
    put(s3, bucket, {"code/prep.py": b"raise ValueError('no rows in raw')\n"})
    req = request(job, [s3_input("code", f"s3://{bucket}/code")], [s3_output("clean", f"s3://{bucket}/{job}/clean")],
                  ["process", "/opt/ml/processing/input/code/prep.py"])
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 1
    answer = describe(tmp_path / "work", job)
    assert answer["ProcessingJobStatus"] == "Failed"
    assert answer["ExitMessage"].splitlines()[0] == "ValueError: no rows in raw"
    assert answer["FailureReason"] == "AlgorithmError: See job logs for more information"
    assert "ExitMessage: ValueError: no rows in raw" in proc.stderr
    assert not [k for k in s3_keys(s3, bucket) if k.startswith(job)]


def test_max_runtime_stops_the_job(s3: Any, s3_env: dict, bucket: str, tmp_path: Path) -> None:
    job = unique("slow")
    put(s3, bucket, {"code/slow.py": b"import time\ntime.sleep(120)\n"})
    req = request(job, [s3_input("code", f"s3://{bucket}/code")], [],
                  ["process", "/opt/ml/processing/input/code/slow.py"], StoppingCondition={"MaxRuntimeInSeconds": 2})
    started = time.monotonic()
    proc = run(tmp_path, req, s3_env, "--kill-after", "5")
    assert time.monotonic() - started < 60
    assert proc.returncode == 128 + 15, proc.stderr
    answer = describe(tmp_path / "work", job)
    assert answer["ProcessingJobStatus"] == "Stopped"
    assert answer["FailureReason"] == "MaxRuntimeInSeconds (2 s) exceeded"


def test_non_utf8_message_fails_the_job(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "prep.py").write_text("open('/opt/ml/output/message', 'wb').write(b'bad \\xff byte')\n")
    out = tmp_path / "out"
    proc = toolkit("local", "process", "--in-process", "--workdir", str(tmp_path / "work"), "--job-name", "utf",
                   "--input", f"code={code}", "--output", f"clean={out}", "--",
                   "python3", "/opt/ml/processing/input/code/prep.py")
    assert proc.returncode == 2
    assert "message is not UTF-8 (byte 4): the platform fails a job whose message file is not UTF-8" in proc.stderr
    assert describe(tmp_path / "work", "utf")["ProcessingJobStatus"] == "Failed"
    assert not out.exists()


def test_options_and_local_paths_default_output_layout(tmp_path: Path) -> None:
    data, code = tmp_path / "data", tmp_path / "code"
    data.mkdir()
    code.mkdir()
    (data / "a.csv").write_text("a\n")
    (code / "prep.py").write_text(PREP)
    work = tmp_path / "work"
    proc = toolkit("local", "process", "--workdir", str(work), "--job-name", "opts", "--input", f"raw={data}",
                   "--input", f"code={code}", "--output", "clean", "--output-path", f"file://{tmp_path / 'out'}",
                   "--", "process", "/opt/ml/processing/input/code/prep.py", "--n", "1")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads((tmp_path / "out" / "opts" / "output" / "clean" / "algo-1.json").read_text())
    assert seen["argv"] == ["--n", "1"] and seen["files"]["raw/a.csv"] == "a\n"
    assert (tmp_path / "out" / "opts" / "output" / "clean" / "sub" / "rows.csv").read_text() == "1,2\n"


def only_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


BASE = {"ProcessingJobName": "bad", "AppSpecification": {"ContainerEntrypoint": ["process", "x.py"]}}


@pytest.mark.parametrize(("change", "expected"), [
    ({"ProcessingInput": []}, "unknown field 'ProcessingInput' (did you mean 'ProcessingInputs'?)"),
    ({"ProcessingOutputConfig": {"Outputs": [{"OutputName": "o", "S3Output": {
        "S3Uri": "/tmp/x", "LocalPath": "/opt/ml/model", "S3UploadMode": "EndOfJob"}}]}},
     "ProcessingOutputConfig.Outputs[0] (o).S3Output.LocalPath: '/opt/ml/model' is outside /opt/ml/processing"),
    ({"ProcessingInputs": [s3_input("a", "/tmp", "/opt/ml/processing/in"),
                           s3_input("b", "/tmp", "/opt/ml/processing/in")]},
     "ProcessingInputs: LocalPath '/opt/ml/processing/in' is used twice"),
    ({"ProcessingInputs": [s3_input("a", "/tmp", "/opt/ml/processing/x"),
                           s3_input("a", "/tmp", "/opt/ml/processing/y")]},
     "ProcessingInputs: InputName 'a' is used twice"),
    ({"ProcessingInputs": [s3_input("a", "/tmp", S3CompressionType="Gzip")]},
     "S3CompressionType Gzip needs S3InputMode Pipe"),
])
def test_bad_request_is_one_line_exit_2(tmp_path: Path, change: dict, expected: str) -> None:
    path = tmp_path / "req.json"
    path.write_text(json.dumps({**BASE, **change}))
    proc = toolkit("local", "process", "--request", str(path), "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 2
    line = only_line(proc.stderr)
    assert line.startswith("toolkit local process: ") and expected in line, line
    assert not (tmp_path / "work").exists()


def test_missing_input_prefix_and_missing_entrypoint_fail_before_running(s3: Any, s3_env: dict, bucket: str,
                                                                           tmp_path: Path) -> None:
    req = request("nodata", [s3_input("raw", f"s3://{bucket}/nothing-here")],
                  [s3_output("clean", f"s3://{bucket}/nodata/clean")], ["process", "x.py"])
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 2
    assert "no objects found under s3://" in describe(tmp_path / "work", "nodata")["FailureReason"]
    req = request("noentry", [], [], ["no-such-tool", "x"])
    proc = run(tmp_path, req, s3_env)
    assert proc.returncode == 2
    assert "ContainerEntrypoint 'no-such-tool' is not on this machine's PATH" in proc.stderr
    assert not s3_keys(s3, bucket)
