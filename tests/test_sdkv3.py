"""Jobs from the SageMaker Python SDK v3 (ModelTrainer) run on the same image as v2 jobs."""

from __future__ import annotations

import json
import tarfile

from helpers import Job

DUMP = """
import json, os, sys
with open(os.path.join(os.environ["SM_MODEL_DIR"], "dump.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "hps": json.loads(os.environ["SM_HPS"]),
               "source": os.environ.get("SM_SOURCE_DIR"), "entry": os.environ.get("SM_ENTRY_SCRIPT"),
               "cwd": os.getcwd()}, f)
"""


def v3_job(job: Job, source_code: dict) -> None:
    # v3 writes hyperparameter strings unquoted and everything else JSON-encoded
    job.hyperparameters({"epochs": "3", "optimizer": "adam", "layers": "[64, 32]", "dropout": "true"},
                        encode=False)
    job.channels("code", "sm_drivers", "train")
    job.resources()
    drivers = job.base / "input" / "data" / "sm_drivers"
    (drivers / "sourcecode.json").write_text(json.dumps(source_code))


def test_entry_script_from_sourcecode_json(job: Job) -> None:
    v3_job(job, {"source_dir": "/local/src", "entry_script": "train.py", "command": None, "requirements": None})
    code = job.base / "input" / "data" / "code"
    job.script("train.py", DUMP, where=code)
    result = job.run()
    assert result.returncode == 0, result.stderr
    got = json.loads((job.model / "dump.json").read_text())
    # v3's own driver: strings as they are, the rest JSON-encoded, in the file's order
    assert got["argv"] == ["--epochs", "3", "--optimizer", "adam", "--layers", "[64, 32]", "--dropout", "true"]
    assert got["hps"] == {"epochs": 3, "optimizer": "adam", "layers": [64, 32], "dropout": True}
    assert got["source"] == str(code) and got["entry"] == "train.py" and got["cwd"] == str(code)
    assert job.success.exists()


def test_command_runs_through_the_shell(job: Job) -> None:
    command = "python3 train.py --from-command 'a b' && echo done > $SM_MODEL_DIR/x"
    v3_job(job, {"source_dir": "src", "command": command})
    job.script("train.py", DUMP, where=job.base / "input" / "data" / "code")
    result = job.run()
    assert result.returncode == 0, result.stderr
    got = json.loads((job.model / "dump.json").read_text())
    assert got["argv"] == ["--from-command", "a b"]  # hyperparameters are not appended to a command
    assert got["hps"]["epochs"] == 3
    assert (job.model / "x").read_text().strip() == "done"


def test_source_dir_tarball_in_the_code_channel(job: Job, tmp_path) -> None:
    v3_job(job, {"source_dir": "s3://bucket/prefix/sourcedir.tar.gz", "entry_script": "train.py"})
    (tmp_path / "train.py").write_text(DUMP)
    with tarfile.open(job.base / "input" / "data" / "code" / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "train.py", arcname="train.py")
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert json.loads((job.model / "dump.json").read_text())["entry"] == "train.py"


def test_failing_command_writes_the_failure_file(job: Job) -> None:
    v3_job(job, {"command": "python3 -c 'raise KeyError(\"label\")'"})
    (job.base / "input" / "data" / "code" / "keep").write_text("")
    result = job.run()
    assert result.returncode == 1
    assert job.failure.read_text().splitlines()[0] == "KeyError: 'label'"


def test_sourcecode_json_without_entry_or_command_is_a_clear_error(job: Job) -> None:
    v3_job(job, {"source_dir": "src"})
    assert job.run().returncode == 2
    assert "sourcecode.json: needs an entry_script or a command" in job.failure.read_text()


def test_tuning_jobs_from_v3_use_classic_unquoted_settings(job: Job, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(DUMP)
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(src),
                         "epochs": "3", "name": "run one"}, encode=False).resources()
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert json.loads((job.model / "dump.json").read_text())["argv"] == ["--epochs", "3", "--name", "run one"]


def test_command_runs_when_distributed_json_is_there(job: Job) -> None:
    # the SDK always uploads distributed.json: "{}" without a distribution
    v3_job(job, {"source_dir": "src", "command": "python3 train.py"})
    (job.base / "input" / "data" / "sm_drivers" / "distributed.json").write_text("{}")
    job.script("train.py", DUMP, where=job.base / "input" / "data" / "code")
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert json.loads((job.model / "dump.json").read_text())["argv"] == []


def test_command_runs_even_when_distributed_json_names_a_launcher(job: Job) -> None:
    # the SDK's sm_train.sh runs a command whatever the distribution (the command launches it)
    v3_job(job, {"source_dir": "src", "command": "python3 train.py --launched-by-command"})
    (job.base / "input" / "data" / "sm_drivers" / "distributed.json").write_text(
        json.dumps({"_type": "torchrun", "process_count_per_node": 1, "driver_script": "torchrun_driver.py"}))
    job.script("train.py", DUMP, where=job.base / "input" / "data" / "code")
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert json.loads((job.model / "dump.json").read_text())["argv"] == ["--launched-by-command"]


def test_source_code_args_are_shell_quoted_onto_the_command(job: Job) -> None:
    args = ["--note", "two words", "--n", 7, "--literal", "$HOME; echo x", "--empty", ""]
    v3_job(job, {"source_dir": "src", "command": "python3  train.py   --first", "args": args})
    (job.base / "input" / "data" / "sm_drivers" / "distributed.json").write_text("{}")
    job.script("train.py", DUMP, where=job.base / "input" / "data" / "code")
    result = job.run()
    assert result.returncode == 0, result.stderr
    got = json.loads((job.model / "dump.json").read_text())
    assert got["argv"] == ["--first", "--note", "two words", "--n", "7", "--literal", "$HOME; echo x", "--empty", ""]
