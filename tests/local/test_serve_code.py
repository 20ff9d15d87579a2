"""``toolkit local serve`` with inference code given as the SDK's ``Model(entry_point=,
source_dir=)`` gives it; a relative SAGEMAKER_SUBMIT_DIRECTORY is where the user typed it; a
model that never becomes ready ends the command, saying why."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from helpers import BIN, clean_environ, free_port
from localjobs import invoke, local_serve, write_script

INFERENCE = """def model_fn(model_dir):
    return open(model_dir + "/weights.txt").read().strip()

def predict_fn(data, model):
    return {"model": model, "code": "%s"}
"""


def test_source_dir_and_entry_point_are_packed_into_code(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_script(model, "w1\n", "weights.txt")
    write_script(model / "code", INFERENCE % "old", "inference.py")  # replaced, as the SDK replaces code/
    write_script(tmp_path / "src", INFERENCE % "src", "serve_me.py")
    write_script(tmp_path / "src", "", "helper.py")
    with local_serve(str(model), "--source-dir", "src", "--entry-point", "serve_me.py", "--job-name", "ep",
                     "--workdir", "work", cwd=tmp_path) as port:
        assert invoke(port, b"[1]") == (200, b'{"model": "w1", "code": "src"}')
    assert sorted(p.name for p in (tmp_path / "work/ep/model/code").iterdir()) == ["helper.py", "serve_me.py"]
    with local_serve(str(model), "--entry-point", "src/serve_me.py", "--workdir", "work", cwd=tmp_path) as port:
        assert invoke(port, b"[1]") == (200, b'{"model": "w1", "code": "src"}')


def test_relative_submit_directory_is_where_the_user_is(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_script(model, "w2\n", "weights.txt")
    write_script(tmp_path / "src", INFERENCE % "relative", "inference.py")
    with local_serve(str(model), "--environment", "SAGEMAKER_SUBMIT_DIRECTORY=./src", "--workdir", "work",
                     cwd=tmp_path) as port:
        assert invoke(port, b"[1]") == (200, b'{"model": "w2", "code": "relative"}')


def test_a_model_that_never_gets_ready_ends_the_command(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write_script(model / "code", "def model_fn(model_dir):\n    raise RuntimeError('weights missing')\n",
                 "inference.py")
    started = time.perf_counter()
    proc = subprocess.run([str(BIN / "toolkit"), "local", "serve", str(model), "--port", str(free_port()),
                           "--ready-timeout", "4", "--workdir", str(tmp_path / "work")],
                          env=clean_environ(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("toolkit local serve: the model is not ready after 4 s: GET /ping gave HTTP 503"), last
    assert "RuntimeError: weights missing" in last and "--ready-timeout" in last
    assert time.perf_counter() - started < 60
