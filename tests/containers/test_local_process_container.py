"""``toolkit local process --image``: the CPU reference image (built once per session by conftest.py)
runs a processing job with its own ``process`` console script, one container per host on the job's
network, /opt/ml mounted from the job folder. Local paths only: no S3 is involved."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import BIN, clean_environ

from .engines import Built, Engine

pytestmark = pytest.mark.container

PREP = """
import json, os, socket, sys
out = "/opt/ml/processing/output/clean"
rows = sorted(os.listdir("/opt/ml/processing/input/raw"))
json.dump({"argv": sys.argv[1:], "rows": rows, "host": socket.gethostname(), "python": sys.prefix,
           "hosts": json.loads(os.environ["SM_HOSTS"])}, open(os.path.join(out, os.environ["SM_CURRENT_HOST"]), "w"))
if "--fail" in sys.argv:
    raise SystemExit("failed on purpose in " + os.environ["SM_CURRENT_HOST"])
"""


def test_processing_job_in_the_image(engine: Engine, cpu_image: Built, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("a")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "prep.py").write_text(PREP)
    name = f"lp-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            [str(BIN / "toolkit"), "local", "process", "--image", cpu_image.tag, "--engine", engine.name,
             "--job-name", name, "--workdir", str(tmp_path / "work"), "--input", f"raw={tmp_path / 'data'}",
             "--input", f"code={tmp_path / 'code'}", "--output", f"clean={tmp_path / 'out'}", "--instance-count", "2",
             "--", "process", "/opt/ml/processing/input/code/prep.py", "x y"],
            env=clean_environ(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        for host in ("algo-1", "algo-2"):
            seen = json.loads((tmp_path / "out" / host).read_text())
            # in the image's venv, as its own host, with the arguments whole
            assert seen == {"argv": ["x y"], "rows": ["a.csv"], "host": host, "python": "/opt/venv",
                            "hosts": ["algo-1", "algo-2"]}
        answer = json.loads((tmp_path / "work" / f"{name}.json").read_text())
        assert answer["ProcessingJobStatus"] == "Completed"
        failed = f"{name}-f"
        proc = subprocess.run(
            [str(BIN / "toolkit"), "local", "process", "--image", cpu_image.tag, "--engine", engine.name,
             "--job-name", failed, "--workdir", str(tmp_path / "work"), "--input", f"code={tmp_path / 'code'}",
             "--input", f"raw={tmp_path / 'data'}", "--output", f"clean={tmp_path / 'out-f'}", "--",
             "process", "/opt/ml/processing/input/code/prep.py", "--fail"],
            env=clean_environ(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1
        answer = json.loads((tmp_path / "work" / f"{failed}.json").read_text())
        assert answer["ProcessingJobStatus"] == "Failed"
        assert answer["ExitMessage"].startswith("failed on purpose in algo-1")
        missing = subprocess.run(
            [str(BIN / "toolkit"), "local", "process", "--image", cpu_image.tag, "--engine", engine.name,
             "--job-name", f"{name}-m", "--workdir", str(tmp_path / "work"), "--", "no-such-tool"],
            env=clean_environ(), capture_output=True, text=True, timeout=300)
        assert missing.returncode == 2
        assert "ContainerEntrypoint 'no-such-tool' is not in the image" in missing.stderr
    finally:
        for job in (name, f"{name}-f"):
            engine.remove(f"{job}-algo-1", f"{job}-algo-2")
            engine("network", "rm", "-f", f"toolkit-{job}", check=False)
