"""`train` end to end: the real console script on real job folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import BIN, Job, make_wheel, scratch_venv

DUMP = """
import json, os, sys
out = {"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items()
       if k.startswith(("SM_", "SAGEMAKER_", "CURRENT_HOST"))}, "cwd": os.getcwd()}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "dump.json"), "w") as f:
    json.dump(out, f)
"""


def dump(job: Job) -> dict:
    return json.loads((job.model / "dump.json").read_text())


def test_python_script_gets_arguments_and_variables(job: Job) -> None:
    job.hyperparameters({"epochs": 3, "lr": 0.01, "sagemaker_program": "train.py"}).channels("train", "test")
    job.resources()
    job.script("train.py", DUMP)
    result = job.run()
    assert result.returncode == 0, result.stderr
    got = dump(job)
    assert got["argv"] == ["--epochs", "3", "--lr", "0.01"]
    env = got["env"]
    assert env["SM_MODEL_DIR"] == str(job.model)
    assert env["SM_CHANNEL_TRAIN"] == str(job.base / "input/data/train")
    assert json.loads(env["SM_CHANNELS"]) == ["test", "train"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "lr": 0.01}
    assert env["SM_HP_EPOCHS"] == "3"
    assert json.loads(env["SM_USER_ARGS"]) == ["--epochs", "3", "--lr", "0.01"]
    assert env["SM_CURRENT_HOST"] == "algo-1" and env["CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_TRAINING_ENV"])["hyperparameters"] == {"epochs": 3, "lr": 0.01}
    assert got["cwd"] == str(job.code)
    assert job.success.exists() and not job.failure.exists()


def test_nested_python_script_and_module(job: Job) -> None:
    job.hyperparameters({"x": 1}).resources()
    job.script("src/run/train.py", DUMP)
    assert job.run(SAGEMAKER_PROGRAM="src/run/train.py").returncode == 0
    assert dump(job)["argv"] == ["-x", "1"]
    (job.model / "dump.json").unlink()
    job.script("pkg/__init__.py", "")
    job.script("pkg/trainer.py", DUMP)
    result = job.run(SAGEMAKER_PROGRAM="pkg.trainer")
    assert result.returncode == 0, result.stderr
    assert dump(job)["argv"] == ["-x", "1"]


def test_shell_script_sees_each_value_whole(job: Job) -> None:
    job.hyperparameters({"name": "two words", "quote": "it's \"quoted\"", "sagemaker_program": "train.sh"})
    job.resources()
    job.script("train.sh", 'for a in "$@"; do printf "%s\\n" "$a"; done > "$SM_MODEL_DIR/args.txt"\n')
    result = job.run()
    assert result.returncode == 0, result.stderr
    lines = (job.model / "args.txt").read_text().splitlines()
    assert lines == ["--name", "two words", "--quote", "it's \"quoted\""]


def test_any_executable(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train"}).resources()
    job.script("train", f"#!{sys.executable}\n{DUMP}", mode=0o755)
    assert job.run().returncode == 0
    assert dump(job)["argv"] == []



def test_requirements_are_installed_before_the_run(job: Job, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "toolkit_test_helper", "VALUE = 42\n")
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("requirements.txt", f"{wheel}\n")
    job.script("train.py", "import os, toolkit_test_helper as h\n"
               "open(os.path.join(os.environ['SM_MODEL_DIR'], 'v'), 'w').write(str(h.VALUE))\n")
    python = scratch_venv(tmp_path / "venv")
    result = subprocess.run([str(python), "-c", "from toolkit.scripts import train_main; train_main()"],
                            env=job.environ(PIP_NO_INDEX="1"), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (job.model / "v").read_text() == "42"


def test_failed_requirements_are_a_one_line_toolkit_error(job: Job, tmp_path: Path) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("requirements.txt", "no-such-package-toolkit-test==9.9\n")
    job.script("train.py", "")
    python = scratch_venv(tmp_path / "venv")
    result = subprocess.run([str(python), "-c", "from toolkit.scripts import train_main; train_main()"],
                            env=job.environ(PIP_NO_INDEX="1"), capture_output=True, text=True, timeout=180)
    assert result.returncode == 2
    message = job.failure.read_text()
    assert message.startswith("pip could not install") and "requirements.txt" in message
    assert "no-such-package-toolkit-test" in message


def test_failure_file_leads_with_the_error_line(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py", "api_token": "s3cret"}).resources()
    job.script("train.py", "import sys\nprint('noise', file=sys.stderr)\n"
               "def f():\n    raise ValueError('learning rate must be positive, got -1')\nf()\n")
    result = job.run()
    assert result.returncode == 1
    text = job.failure.read_text()
    lines = text.splitlines()
    assert lines[0] == "ValueError: learning rate must be positive, got -1"
    assert lines[1] == "Exit code: 1"
    assert lines[2].startswith("Command: ") and "train.py --api_token '******'" in lines[2]
    assert "s3cret" not in text
    assert not job.success.exists()
    assert "ValueError: learning rate" in result.stderr  # streamed through as well


def test_failure_file_is_at_most_1024_bytes(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import sys\nfor i in range(500):\n    print('é' * 50, i, file=sys.stderr)\nsys.exit(3)\n")
    assert job.run().returncode == 3
    data = job.failure.read_bytes()
    assert len(data) <= 1024
    data.decode("utf-8")  # never cut inside a character
    assert data.decode().splitlines()[1] == "Exit code: 3"


def test_failure_file_written_by_the_script_is_kept(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import os, sys\n"
               "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('my own reason')\n"
               "sys.exit(4)\n")
    assert job.run().returncode == 4
    assert job.failure.read_text() == "my own reason"


def test_exit_code_of_a_signal_is_128_plus_n(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert job.run().returncode == 128 + 9
    assert "Exit code: 137" in job.failure.read_text()


def start_train(job: Job, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "train")], env=job.environ(**extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigterm_reaches_the_script_and_its_children_at_once(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", """
import os, signal, subprocess, sys, time
model = os.environ["SM_MODEL_DIR"]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.path.join(model, "child.pid"), "w").write(str(child.pid))
def stop(signum, frame):
    open(os.path.join(model, "checkpoint"), "w").write("saved")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(model, "ready"), "w").write("")
time.sleep(60)
""")
    proc = start_train(job)
    wait_for(job.model / "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143  # the script's own handler's code: SIGTERM reached it, not a SIGKILL
    assert (job.model / "checkpoint").read_text() == "saved"
    child = int((job.model / "child.pid").read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the grandchild got SIGTERM too (same process group)
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the script's child process survived SIGTERM")


def test_a_script_ignoring_sigterm_is_killed_after_the_grace_period(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "open(os.path.join(os.environ['SM_MODEL_DIR'], 'ready'), 'w').write('')\ntime.sleep(60)\n")
    proc = start_train(job, TOOLKIT_STOP_GRACE_SECONDS="1")
    wait_for(job.model / "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 128 + signal.SIGKILL


def test_output_streams_while_the_script_runs(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import sys, time\nprint('first', flush=True)\n"
               "print('err-first', file=sys.stderr, flush=True)\ntime.sleep(30)\n")
    proc = start_train(job, PYTHONUNBUFFERED="1")
    try:
        assert proc.stdout.readline().strip() == "first"
        deadline = time.monotonic() + 10
        while True:
            line = proc.stderr.readline()
            if "err-first" in line:
                break
            assert time.monotonic() < deadline
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# Bad input: one-line error, failure file, exit 2, nothing else written
# --------------------------------------------------------------------------------------------


def assert_refused(job: Job, result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    message = job.failure.read_text()
    assert "\n" not in message.strip(), message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in result.stderr
    assert not job.success.exists() and not job.model.exists()
    return message


@pytest.mark.parametrize("name", ["hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"])
def test_malformed_config(job: Job, name: str) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources().channels("train")
    job.script("train.py", "")
    (job.config / name).write_text("{not json")
    assert_refused(job, job.run(), name, "not valid JSON")


def test_hyperparameters_not_an_object(job: Job) -> None:
    job.resources()
    (job.config / "hyperparameters.json").write_text('["epochs", 3]')
    assert_refused(job, job.run(), "hyperparameters.json", "must be a JSON object")


def test_resource_config_without_current_host(job: Job) -> None:
    (job.config / "resourceconfig.json").write_text('{"hosts": ["algo-1"]}')
    assert_refused(job, job.run(), "current_host", "missing")


def test_current_host_not_in_hosts(job: Job) -> None:
    job.resources(current="algo-3", hosts=("algo-1", "algo-2"))
    assert_refused(job, job.run(), "'algo-3' is not in", "algo-2")


def test_no_entry_point(job: Job) -> None:
    job.hyperparameters({"epochs": 1}).resources()
    job.script("train.py", "")
    assert_refused(job, job.run(), "no entry point", "sagemaker_program")


def test_entry_point_not_found(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "trian.py"}).resources()
    job.script("train.py", "")
    assert_refused(job, job.run(), "'trian.py' not found", "train.py")


def test_entry_point_not_executable(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train"}).resources()
    job.script("train", "#!/bin/sh\necho hi\n", mode=0o644)
    assert_refused(job, job.run(), "not executable", "chmod +x")


def test_empty_code_dir(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.code.mkdir(parents=True)
    assert_refused(job, job.run(), "is empty or missing")


def test_missing_file_mode_channel_folder(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources().channels("train", create=False)
    job.script("train.py", "")
    assert_refused(job, job.run(), "channel 'train'", "File mode")


def test_missing_resource_config_is_not_an_error(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"})
    job.script("train.py", DUMP)
    result = job.run()
    assert result.returncode == 0
    assert "running as a single host 'algo-1'" in result.stderr
    assert json.loads(dump(job)["env"]["SM_HOSTS"]) == ["algo-1"]


def test_log_lines_name_each_step_with_its_duration(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py", "db_password": "pw123"}).resources()
    job.script("train.py", "")
    result = job.run()
    for step in ("read config", "fetch code", "install dependencies"):
        assert any(step in ln and ln.rstrip().endswith(" s)") for ln in result.stderr.splitlines()), step
    assert "pw123" not in result.stderr
    quiet = job.run(SAGEMAKER_CONTAINER_LOG_LEVEL="40")
    assert "read config" not in quiet.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(), reason="needs root and unshare")
def test_as_pid_1_orphans_are_reaped(job: Job) -> None:
    # In a container, train is PID 1: orphaned grandchildren are re-parented to it and must not
    # stay zombies. A new PID namespace makes train PID 1 here, as in a container.
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", """
import os, time
r, w = os.pipe()
pid = os.fork()
if pid == 0:           # middle process: start an orphan and leave at once
    orphan = os.fork()
    if orphan == 0:
        time.sleep(0.3)
        os._exit(0)
    os.write(w, str(orphan).encode())
    os._exit(0)
os.waitpid(pid, 0)
orphan = int(os.read(r, 32))
deadline = time.monotonic() + 60  # the orphan exits after 0.3 s; whoever adopted it must then reap it
while os.path.exists(f"/proc/{orphan}") and time.monotonic() < deadline:
    time.sleep(0.02)
zombies = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            state = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            zombies.append(entry)
assert os.getppid() == 1, os.getppid()
open(os.path.join(os.environ["SM_MODEL_DIR"], "zombies"), "w").write(",".join(zombies))
""")
    result = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", str(BIN / "train")],
                            env=job.environ(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (job.model / "zombies").read_text() == ""


def test_gpu_count_comes_from_nvidia_smi_asked_once(job: Job, tmp_path: Path) -> None:
    # No GPU here: a stand-in nvidia-smi on PATH prints what the real one prints for two GPUs
    # and counts its calls.
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    calls = tmp_path / "calls"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\n"
                    "echo 'GPU 0: NVIDIA A10G (UUID: GPU-1)'\necho 'GPU 1: NVIDIA A10G (UUID: GPU-2)'\n")
    fake.chmod(0o755)
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", DUMP)
    result = job.run(PATH=f"{fake.parent}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    env = dump(job)["env"]
    assert env["SM_NUM_GPUS"] == "2"
    assert json.loads(env["SM_TRAINING_ENV"])["num_gpus"] == 2
    assert calls.read_text().count("x") == 1
    (job.model / "dump.json").unlink()
    calls.unlink()
    assert job.run().returncode == 0  # without nvidia-smi: 0 GPUs, nothing spawned
    assert dump(job)["env"]["SM_NUM_GPUS"] == "0"


def test_fetch_credentials_never_reach_the_script(job: Job, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(DUMP)
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(src),
                         "sagemaker_git_username": "bob", "sagemaker_git_token": "tok-123",
                         "sagemaker_mpi_enabled": False}).resources()
    result = job.run()
    assert result.returncode == 0, result.stderr
    env = dump(job)["env"]
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_mpi_enabled": False}
    assert "tok-123" not in json.dumps(env) and "tok-123" not in result.stderr
