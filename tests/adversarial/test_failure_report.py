"""The failure file's first line (SageMaker's FailureReason) is the error, whatever else the job
prints; its size limit at the boundary; a None hyperparameter as sagemaker-training passes it."""

from __future__ import annotations

import json

import pytest
from helpers import Job

from toolkit.report import FAILURE_LIMIT, error_line, failure_report, truncate_utf8

TB = 'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\n    main()\n'


@pytest.mark.parametrize("stderr, expected", [
    (TB + "ValueError: bad input\n", "ValueError: bad input"),
    # a multi-line message: its first line, not its last
    (TB + "ValueError: first line\nsecond line\nthird line\n", "ValueError: first line"),
    # output after the traceback (atexit handlers, a logger's flush)
    (TB + "RuntimeError: CUDA out of memory\nwandb: Waiting for W&B process to finish...\nwandb: Synced 3 files\n",
     "RuntimeError: CUDA out of memory"),
    # chained exceptions: the last one raised
    (TB + "KeyError: 'lr'\n\nDuring handling of the above exception, another exception occurred:\n\n"
     + TB + "ValueError: no learning rate\n", "ValueError: no learning rate"),
    (TB + "KeyError: 'lr'\n\nThe above exception was the direct cause of the following exception:\n\n"
     + TB + "ConfigError: lr missing\nexiting\n", "ConfigError: lr missing"),
    # noise before the traceback
    ("epoch 1 loss 0.3\nwarning: slow\n" + TB + "ZeroDivisionError: division by zero\n",
     "ZeroDivisionError: division by zero"),
    # non-Python failures: the last line
    ("compiling\nerror: cannot open data.bin\n", "error: cannot open data.bin"),
    ("terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n",
     "what():  std::bad_alloc"),
    ("", ""),
])
def test_error_line(stderr: str, expected: str) -> None:
    assert error_line(stderr) == expected


def test_output_after_the_traceback_does_not_lead_the_failure_file(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import atexit, sys\n"
               "atexit.register(lambda: print('wandb: Waiting for W&B process to finish...', file=sys.stderr))\n"
               "raise ValueError('learning rate must be positive\\ngot -1')\n")
    result = job.run()
    assert result.returncode == 1
    lines = job.failure.read_text().splitlines()
    assert lines[0] == "ValueError: learning rate must be positive"
    assert lines[1] == "Exit code: 1"
    assert "wandb: Waiting" in job.failure.read_text()  # kept in the tail, just not first


def test_a_shell_script_failure_leads_with_its_last_line(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.sh"}).resources()
    job.script("train.sh", "echo starting >&2\necho 'fatal: no data in /opt/ml/input' >&2\nexit 7\n")
    assert job.run().returncode == 7
    assert job.failure.read_text().splitlines()[0] == "fatal: no data in /opt/ml/input"


@pytest.mark.parametrize("size, kept", [(FAILURE_LIMIT - 1, FAILURE_LIMIT - 1), (FAILURE_LIMIT, FAILURE_LIMIT),
                                        (FAILURE_LIMIT + 1, FAILURE_LIMIT)])
def test_failure_file_limit_at_below_and_above(size: int, kept: int) -> None:
    assert len(truncate_utf8("x" * size)) == kept


def test_failure_file_limit_never_cuts_a_character() -> None:
    data = truncate_utf8("x" * (FAILURE_LIMIT - 1) + "é")  # é is 2 bytes: it does not fit
    assert data == b"x" * (FAILURE_LIMIT - 1)


def test_failure_report_fits_with_long_stderr_and_keeps_the_head() -> None:
    report = failure_report(TB + "ValueError: x\n" + "noise line\n" * 500, 1, ["python", "train.py"])
    assert len(report.encode()) <= FAILURE_LIMIT
    assert report.splitlines()[:3] == ["ValueError: x", "Exit code: 1", "Command: python train.py"]


def test_none_hyperparameter_is_an_empty_argument_as_in_sagemaker_training(job: Job) -> None:
    # sagemaker_training.mapping._decode: None -> "" (to_cmd_args and to_env_vars alike)
    job.hyperparameters({"sagemaker_program": "train.py", "resume": None, "epochs": 2}).resources()
    job.script("train.py", "import json, os, sys\n"
               "json.dump({'argv': sys.argv[1:], 'hp': os.environ['SM_HP_RESUME'], 'hps': os.environ['SM_HPS']},\n"
               "          open(os.path.join(os.environ['SM_MODEL_DIR'], 'seen.json'), 'w'))\n")
    result = job.run()
    assert result.returncode == 0, result.stderr
    seen = json.loads((job.model / "seen.json").read_text())
    assert seen["argv"] == ["--epochs", "2", "--resume", ""]
    assert seen["hp"] == ""
    assert json.loads(seen["hps"]) == {"epochs": 2, "resume": None}


@pytest.mark.parametrize("stderr, expected", [
    ("one\ntwo\nthree\n", "three"),
    ("Traceback (most recent call last):\nSomeError: x\nafter\n", "SomeError: x"),
    ("  + Exception Group Traceback (most recent call last):\n    Traceback (most recent call last):\n"
     "      File \"x\", line 1\nValueError: inner\nlater\n", "ValueError: inner"),
])
def test_error_line_edges(stderr: str, expected: str) -> None:
    assert error_line(stderr) == expected


def test_failure_report_fills_the_limit_with_the_last_lines_in_order() -> None:
    tail = "Traceback (most recent call last):\n  File \"t.py\"\nValueError: x\n" + "".join(
        f"{i % 10}\n" for i in range(2000))
    sizes = []
    for script in ("t.py", "tr.py"):  # one of the two leaves an even budget for 2-byte lines
        report = failure_report(tail, 1, ["python", script])
        sizes.append(len(report.encode()))
        assert "\nLast lines of stderr:\n" in report
        assert report.endswith("\n7\n8\n9")  # the newest lines, in order
    # every line counts its newline, the last has none: at most one byte of the budget is unused
    assert max(sizes) == FAILURE_LIMIT - 1 and min(sizes) == FAILURE_LIMIT - 2
