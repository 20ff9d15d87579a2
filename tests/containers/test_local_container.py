"""``toolkit local`` in container mode: the real console script running the CPU reference image
(built once per session by conftest.py) with a real engine, one container per host on the job's
private network, /opt/ml mounted from the job folder. Local paths only: no S3 is involved."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from helpers import BIN, clean_environ, local_serve, wait_for

from .engines import Built, Engine

pytestmark = pytest.mark.container


def toolkit(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The real ``toolkit`` console script, with a clean environment."""
    return subprocess.run([str(BIN / "toolkit"), *args], env=clean_environ(), capture_output=True, text=True,
                          timeout=timeout)


def cmdlines() -> list[bytes]:
    """The command line of every process on this machine, as any user can read them (ps)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes())
            except OSError:
                pass
    return found


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class LocalJob:
    """One container-mode job: a unique name, its folders, and what it leaves in the engine."""

    def __init__(self, engine: Engine, image: Built, root: Path, hosts: int = 1) -> None:
        self.engine = engine
        self.image = image
        self.name = f"lc-{uuid.uuid4().hex[:8]}"
        self.root = root
        self.hosts = [f"algo-{i + 1}" for i in range(hosts)]
        self.out = root / "out"
        self.work = root / "work"
        self.source = root / "src"

    def argv(self, script: str, *extra: str, image: Optional[str] = None) -> list[str]:
        write(self.source / "train.py", script)
        write(self.root / "data" / "a.csv", "1,2\n3,4\n")
        return [str(BIN / "toolkit"), "local", "train", "--image", image or self.image.tag, "--engine",
                self.engine.name, "--job-name", self.name, "--source-dir", str(self.source), "--entry-point",
                "train.py", "--channel", f"train={self.root / 'data'}", "--output-path", str(self.out),
                "--instance-count", str(len(self.hosts)), "--workdir", str(self.work), *extra]

    def train(self, script: str, *extra: str, image: Optional[str] = None,
              timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(script, *extra, image=image), env=clean_environ(), capture_output=True,
                              text=True, timeout=timeout)

    def describe(self) -> dict[str, Any]:
        return json.loads((self.work / f"{self.name}.json").read_text())

    def leftovers(self) -> list[str]:
        """Containers or the network of this job that are still in the engine."""
        names = self.engine("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        left = [n for n in names if n.startswith(self.name)]
        if self.engine("network", "exists", f"toolkit-{self.name}", check=False).returncode == 0:
            left.append(f"toolkit-{self.name}")
        return left

    def cleanup(self) -> None:
        self.engine.remove(*(f"{self.name}-{h}" for h in self.hosts))
        self.engine("network", "rm", "-f", f"toolkit-{self.name}", check=False)


@pytest.fixture
def local_job(engine: Engine, cpu_image: Built, tmp_path: Path) -> Iterator[Any]:
    made: list[LocalJob] = []

    def make(hosts: int = 1) -> LocalJob:
        job = LocalJob(engine, cpu_image, tmp_path / f"job{len(made)}", hosts)
        made.append(job)
        return job

    yield make
    for job in made:
        job.cleanup()


REPORT = """
import json, os, socket, sys
cfg = os.environ["SM_INPUT_CONFIG_DIR"]
rc = json.load(open(os.path.join(cfg, "resourceconfig.json")))
data = os.environ["SM_CHANNEL_TRAIN"]
report = {"rc": rc, "hostname": socket.gethostname(), "python": sys.prefix, "cwd": os.getcwd(),
          "argv": sys.argv[1:], "data": open(os.path.join(data, "a.csv")).read(),
          "job": os.environ.get("TRAINING_JOB_NAME")}
json.dump(report, open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w"))
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.txt"), "w").write("loss=0.25\\n")
print("trained in the container")
"""


def test_one_host_job_with_local_paths(local_job: Any) -> None:
    job = local_job()
    proc = job.train(REPORT, "--hyperparameter", "lr=0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Where SageMaker puts everything: <output path>/<job>/output/{model,output}.tar.gz, and the source.
    assert sorted(p.relative_to(job.out).as_posix() for p in job.out.rglob("*") if p.is_file()) == [
        f"{job.name}/output/model.tar.gz", f"{job.name}/output/output.tar.gz", f"{job.name}/source/sourcedir.tar.gz"]
    model = tar_members(job.out / job.name / "output/model.tar.gz")
    assert set(model) == {"report.json"}
    report = json.loads(model["report.json"])
    # It ran in the image (its venv, its /opt/ml/code), as algo-1, with the job's data and hyperparameters.
    assert report["python"] == "/opt/venv" and report["cwd"] == "/opt/ml/code"
    assert report["hostname"] == "algo-1"
    assert report["rc"]["current_host"] == "algo-1" and report["rc"]["hosts"] == ["algo-1"]
    assert report["data"] == "1,2\n3,4\n"
    assert report["argv"] == ["--lr", "0.5"]
    assert report["job"] == job.name
    assert tar_members(job.out / job.name / "output/output.tar.gz") == {"metrics.txt": b"loss=0.25\n"}
    assert (job.work / job.name / "algo-1" / "output" / "success").is_file()
    assert "trained in the container" in proc.stdout + proc.stderr

    answer = job.describe()
    assert answer["TrainingJobStatus"] == "Completed" and "FailureReason" not in answer
    assert answer["AlgorithmSpecification"]["TrainingImage"] == job.image.tag
    assert answer["ModelArtifacts"] == {"S3ModelArtifacts": str(job.out / job.name / "output/model.tar.gz")}
    assert [t["Status"] for t in answer["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert f"job {job.name}: Completed (exit code 0)" in proc.stderr
    assert job.leftovers() == []


# algo-1 listens; algo-2 resolves algo-1 by name and connects. Each reports what it saw, so the test
# can check that the address algo-2 resolved is algo-1's, and the peer algo-1 saw is algo-2's.
TWO_HOSTS = """
import json, os, socket, time
rc = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")))
me = rc["current_host"]
report = {"rc": rc, "hostname": socket.gethostname(), "own_address": socket.gethostbyname(me)}
if me == "algo-1":
    server = socket.create_server(("0.0.0.0", 7777))
    server.settimeout(60)
    conn, (peer, _) = server.accept()
    report["peer"] = peer
    report["message"] = conn.recv(100).decode()
    conn.sendall(b"hello from " + me.encode())
    conn.close()
else:
    report["resolved_algo_1"] = socket.gethostbyname("algo-1")
    deadline = time.time() + 60
    while True:
        try:
            conn = socket.create_connection(("algo-1", 7777), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    conn.sendall(b"hello from " + me.encode())
    report["answer"] = conn.recv(100).decode()
    conn.close()
json.dump(report, open(os.path.join(os.environ["SM_MODEL_DIR"], me + ".json"), "w"))
"""


def test_two_hosts_resolve_and_reach_each_other(local_job: Any) -> None:
    job = local_job(hosts=2)
    proc = job.train(TWO_HOSTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = tar_members(job.out / job.name / "output/model.tar.gz")
    assert set(model) == {"algo-1.json", "algo-2.json"}
    one, two = (json.loads(model[f"{h}.json"]) for h in ("algo-1", "algo-2"))
    for host, report in (("algo-1", one), ("algo-2", two)):
        assert report["hostname"] == host
        assert report["rc"]["current_host"] == host
        assert report["rc"]["hosts"] == ["algo-1", "algo-2"]
    assert one["own_address"] != two["own_address"]
    assert two["resolved_algo_1"] == one["own_address"]
    assert one["peer"] == two["own_address"]
    assert one["message"] == "hello from algo-2" and two["answer"] == "hello from algo-1"
    for host in job.hosts:
        assert (job.work / job.name / host / "output" / "success").is_file()
    assert "hosts: algo-1 exit 0, algo-2 exit 0" in proc.stderr
    assert job.describe()["TrainingJobStatus"] == "Completed"
    assert job.leftovers() == []


FAIL = """
import os
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "partial.txt"), "w").write("half")
raise ValueError("bad learning rate")
"""


def test_failing_script_reports_exit_status_and_failure_reason(local_job: Any) -> None:
    job = local_job()
    proc = job.train(FAIL)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    answer = job.describe()
    assert answer["TrainingJobStatus"] == "Failed"
    assert answer["FailureReason"].startswith("AlgorithmError: ValueError: bad learning rate")
    assert "ModelArtifacts" not in answer
    assert not (job.out / job.name / "output/model.tar.gz").exists()
    assert tar_members(job.out / job.name / "output/output.tar.gz") == {"partial.txt": b"half"}
    assert "FailureReason: AlgorithmError: ValueError: bad learning rate" in proc.stderr
    assert job.leftovers() == []


# algo-2 fails at once; algo-1 would train for two minutes unless it is stopped.
ONE_FAILS = """
import json, os, time
me = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")))["current_host"]
if me == "algo-2":
    raise RuntimeError("algo-2 ran out of data")
time.sleep(120)
"""


def test_one_failed_host_stops_the_other(local_job: Any) -> None:
    job = local_job(hosts=2)
    proc = job.train(ONE_FAILS, "--kill-after", "10", timeout=100)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    answer = job.describe()
    assert answer["TrainingJobStatus"] == "Failed"
    assert answer["FailureReason"].startswith("AlgorithmError: RuntimeError: algo-2 ran out of data")
    # algo-1 was stopped with SIGTERM (train forwards it to the script): 128 + 15.
    assert "hosts: algo-1 exit 143, algo-2 exit 1" in proc.stderr
    assert job.leftovers() == []


# What only container mode does with the input: FIFOs read through the bind mount, a FastFile channel
# mounted read-only (root could write a 0444 file otherwise), checkpoints at a path outside /opt/ml.
MOUNTS = """
import json, os, stat
data = os.environ["SM_INPUT_DATA_DIR"]
cfg = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")))
report = {"checkpoint_config": cfg, "checkpoints_before": sorted(os.listdir("/checkpoints"))}
for epoch in range(2):
    path = os.path.join(data, "pipe_%d" % epoch)
    report["fifo_%d" % epoch] = stat.S_ISFIFO(os.stat(path).st_mode)
    report["epoch_%d" % epoch] = open(path).read()
fast = os.path.join(os.environ["SM_CHANNEL_FAST"], "f.csv")
report["fast"] = open(fast).read()
try:
    open(fast, "a").write("changed")
    report["fast_write"] = "written"
except OSError as exc:
    report["fast_write"] = exc.strerror
open("/checkpoints/step-2", "w").write("2")
json.dump(report, open(os.path.join(os.environ["SM_MODEL_DIR"], "mounts.json"), "w"))
"""


def test_pipe_fastfile_and_checkpoints_through_the_mounts(local_job: Any, tmp_path: Path) -> None:
    job = local_job()
    write(tmp_path / "pipe" / "p-0", "alpha\n")
    write(tmp_path / "pipe" / "p-1", "beta\n")
    write(tmp_path / "fast" / "f.csv", "5,6\n")
    checkpoints = tmp_path / "checkpoints"
    write(checkpoints / "step-1", "1")

    def chan(name: str, mode: str) -> dict[str, Any]:
        return {"ChannelName": name, "InputMode": mode, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": str(tmp_path / name), "S3DataDistributionType": "FullyReplicated"}}}

    request = write(tmp_path / "request.json", json.dumps({
        "InputDataConfig": [chan("pipe", "Pipe"), chan("fast", "FastFile")],
        "CheckpointConfig": {"S3Uri": str(checkpoints), "LocalPath": "/checkpoints"}}))
    proc = job.train(MOUNTS, "--request", str(request))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(tar_members(job.out / job.name / "output/model.tar.gz")["mounts.json"])
    assert report["fifo_0"] and report["fifo_1"]
    assert report["epoch_0"] == report["epoch_1"] == "alpha\nbeta\n"
    assert report["fast"] == "5,6\n" and report["fast_write"] == "Read-only file system"
    assert report["checkpoint_config"] == {"LocalPath": "/checkpoints", "S3Uri": str(checkpoints)}
    assert report["checkpoints_before"] == ["step-1"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-1", "step-2"]  # uploaded at the end
    assert (tmp_path / "fast" / "f.csv").read_text() == "5,6\n"


STOPPABLE = """
import os, signal, sys, time
def stop(signum, frame):
    open(os.path.join(os.environ["SM_MODEL_DIR"], "stopped.txt"), "w").write("saved on SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(60)
"""


def test_max_runtime_stops_the_container_with_sigterm(local_job: Any) -> None:
    job = local_job()
    proc = job.train(STOPPABLE, "--max-run", "2", "--kill-after", "20", timeout=60)
    # the script exited 0 on SIGTERM, but a stop is never a success: train exits 128+15
    assert proc.returncode == 143, proc.stdout + proc.stderr
    answer = job.describe()
    assert (answer["TrainingJobStatus"], answer["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded"), proc.stderr
    # the script saw SIGTERM (not the SIGKILL 20 s later) and its model was still uploaded
    assert tar_members(job.out / job.name / "output/model.tar.gz") == {"stopped.txt": b"saved on SIGTERM"}
    assert job.leftovers() == []


ENTRY_CODE = ("import json, os, sys; json.dump({'argv': sys.argv, 'job': os.environ['TRAINING_JOB_NAME']}, "
              "open('/opt/ml/model/entry.json', 'w'))")


def test_container_entrypoint_and_arguments_replace_train(local_job: Any, tmp_path: Path) -> None:
    job = local_job()
    request = write(tmp_path / "request.json", json.dumps({"AlgorithmSpecification": {
        "TrainingImage": job.image.tag, "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python3", "-c", ENTRY_CODE], "ContainerArguments": ["first", "second word"]}}))
    proc = job.train("raise SystemExit('train.py must not run')", "--request", str(request))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(tar_members(job.out / job.name / "output/model.tar.gz")["entry.json"])
    assert report == {"argv": ["-c", "first", "second word"], "job": job.name}


# Each host saves its work on SIGTERM; the test stops `toolkit local train` itself once both run.
SAVE_ON_SIGTERM = """
import json, os, signal, sys, time
me = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")))["current_host"]
def stop(signum, frame):
    open(os.path.join(os.environ["SM_MODEL_DIR"], me + ".txt"), "w").write("saved on SIGTERM")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
open("/opt/ml/running", "w").close()
time.sleep(60)
"""


def test_sigterm_to_toolkit_stops_every_container(local_job: Any) -> None:
    job = local_job(hosts=2)
    proc = subprocess.Popen(job.argv(SAVE_ON_SIGTERM, "--kill-after", "20"), env=clean_environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: all((job.work / job.name / h / "running").exists() for h in job.hosts)
                 or proc.poll() is not None, 60, "both hosts to run")
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, out
    answer = job.describe()
    assert (answer["TrainingJobStatus"], answer["SecondaryStatus"]) == ("Stopped", "Stopped"), out
    assert tar_members(job.out / job.name / "output/model.tar.gz") == {
        "algo-1.txt": b"saved on SIGTERM", "algo-2.txt": b"saved on SIGTERM"}
    assert job.leftovers() == []


def test_missing_image_is_a_client_error_before_any_host_starts(local_job: Any) -> None:
    job = local_job(hosts=2)
    missing = f"localhost/toolkit-test-missing:{uuid.uuid4().hex[:8]}"
    proc = job.train(REPORT, image=missing, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    answer = job.describe()
    assert answer["TrainingJobStatus"] == "Failed"
    assert answer["FailureReason"].startswith(
        f"ClientError: image '{missing}' is not on this machine and {job.engine.name} cannot pull it (")
    assert f"FailureReason: ClientError: image '{missing}'" in proc.stderr
    assert "algo-1 |" not in proc.stderr and "exited with code 125" not in proc.stderr
    assert job.leftovers() == []


# The script waits (up to 60 s) for the test to release it, so the test can read every command line
# on the machine while the container runs.
SECRET = """
import os, time
deadline = time.time() + 60
while not os.path.exists("/opt/ml/release") and time.time() < deadline:
    time.sleep(0.1)
seen = os.environ.get("AWS_SECRET_ACCESS_KEY", "<unset>") + " " + os.environ.get("AWS_ACCESS_KEY_ID", "<unset>")
open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.txt"), "w").write(seen)
"""


def test_shell_credentials_reach_the_container_but_not_the_command_line(local_job: Any) -> None:
    job = local_job()
    secret = f"not-a-real-secret-{uuid.uuid4().hex}"
    env = clean_environ(AWS_SECRET_ACCESS_KEY=secret, AWS_ACCESS_KEY_ID="AKIATESTLOCAL")
    proc = subprocess.Popen(job.argv(SECRET), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    release = job.work / job.name / "algo-1" / "release"
    try:
        wait_for(lambda: any(f"{job.name}-algo-1".encode() in c for c in cmdlines()) or proc.poll() is not None,
                 60, "the engine to start algo-1")
        assert proc.poll() is None, proc.communicate()[0].decode()
        leaked = [c.replace(b"\0", b" ").decode(errors="replace") for c in cmdlines() if secret.encode() in c]
        assert leaked == []
        release.write_text("")
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    model = tar_members(job.out / job.name / "output/model.tar.gz")
    assert model["seen.txt"].decode() == f"{secret} AKIATESTLOCAL"


# ---------------------------------------------------------------------------------------------
# serve --image and transform --image
# ---------------------------------------------------------------------------------------------

INFERENCE = """
import os

def model_fn(model_dir):
    return int(open(os.path.join(model_dir, "factor")).read())

def transform_fn(model, body, content_type, accept):
    text = body.decode() if isinstance(body, bytes) else body
    return "".join(f"{int(line) * model}\\n" for line in text.splitlines() if line.strip())
"""


@pytest.fixture
def model_tarball(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("factor", "10"), ("code/inference.py", INFERENCE)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def call(port: int, method: str, path: str, body: Optional[bytes] = None,
         headers: Optional[dict[str, str]] = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_serve_with_the_image_until_sigterm(engine: Engine, cpu_image: Built, model_tarball: Path,
                                            tmp_path: Path) -> None:
    name = f"lc-serve-{uuid.uuid4().hex[:8]}"
    try:
        with local_serve(str(model_tarball), "--image", cpu_image.tag, "--engine", engine.name, "--job-name", name,
                         "--workdir", str(tmp_path / "work")) as port:
            assert call(port, "GET", "/ping")[0] == 200
            assert call(port, "POST", "/invocations", b"4\n5\n", {"Content-Type": "text/plain"}) == (200,
                                                                                                    b"40\n50\n")
            # the model was extracted here and mounted into the container
            assert (tmp_path / "work" / name / "model" / "factor").read_text() == "10"
        assert name not in engine("ps", "-a", "--format", "{{.Names}}").stdout.split()
    finally:
        engine.remove(name)


def test_transform_with_the_image(engine: Engine, cpu_image: Built, model_tarball: Path, tmp_path: Path) -> None:
    for name, numbers in (("a.txt", range(1, 6)), ("b.txt", range(10, 13)), ("c.txt", [7])):
        write(tmp_path / "in" / name, "".join(f"{n}\n" for n in numbers))
    out = tmp_path / "out"
    job = f"lc-transform-{uuid.uuid4().hex[:8]}"
    try:
        proc = toolkit("local", "transform", "--model", str(model_tarball), "--image", cpu_image.tag, "--engine",
                       engine.name, "--input", str(tmp_path / "in"), "--output-path", str(out), "--split-type",
                       "Line", "--content-type", "text/plain", "--assemble-with", "Line", "--batch-strategy",
                       "SingleRecord", "--max-concurrent", "2", "--environment", "SAGEMAKER_MODEL_SERVER_WORKERS=1",
                       "--job-name", job, "--workdir", str(tmp_path / "work"))
        assert proc.returncode == 0, proc.stderr
        assert (out / "a.txt.out").read_text() == "10\n20\n30\n40\n50\n"
        assert (out / "b.txt.out").read_text() == "100\n110\n120\n"
        assert (out / "c.txt.out").read_text() == "70\n"
        assert "3 file(s), 9 record(s) in 9 request(s) (SingleRecord" in proc.stderr
        assert job not in engine("ps", "-a", "--format", "{{.Names}}").stdout.split()
    finally:
        engine.remove(job)
