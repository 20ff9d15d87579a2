"""``toolkit local process --code FILE``: a ScriptProcessor's job on this machine, run as ``toolkit submit
process --code`` sends it (the script as the input ``code``, ``process <its path>`` plus the arguments)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from localjobs import describe, toolkit

pytestmark = pytest.mark.skipif(subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0,
                                reason="in-process processing jobs need a private mount namespace (unshare -m)")

PREP = """
import json, os, sys
out = "/opt/ml/processing/output/clean"
json.dump({"argv": sys.argv[1:], "raw": open("/opt/ml/processing/input/raw/rows.csv").read(),
           "code": sorted(os.listdir("/opt/ml/processing/input/code"))}, open(os.path.join(out, "seen.json"), "w"))
"""


def test_code_runs_as_a_script_processor_runs_it(tmp_path: Path) -> None:
    (tmp_path / "prep.py").write_text(PREP)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "rows.csv").write_text("1,2\n")
    work = tmp_path / "work"
    proc = toolkit("local", "process", "--job-name", "code-job", "--in-process", "--code", str(tmp_path / "prep.py"),
                   "--input", f"raw={tmp_path / 'raw'}", "--output", f"clean={tmp_path / 'clean'}",
                   "--workdir", str(work), "--", "--ratio", "0.5", timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads((tmp_path / "clean" / "seen.json").read_text())
    assert seen == {"argv": ["--ratio", "0.5"], "raw": "1,2\n", "code": ["prep.py"]}
    inputs = json.loads((work / "code-job" / "algo-1" / "config" / "processingjobconfig.json").read_text())
    assert inputs["AppSpecification"]["ContainerEntrypoint"] == ["process", "/opt/ml/processing/input/code/prep.py"]
    assert inputs["AppSpecification"]["ContainerArguments"] == ["--ratio", "0.5"]
    assert describe(work, "code-job")["ProcessingJobStatus"] == "Completed"
