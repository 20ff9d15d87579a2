"""docs/environment.md is generated from the one table of settings (toolkit/settings.py), every
variable the code reads goes through that table, and every variable `train` and `process` export is
documented."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from helpers import Job

from toolkit import settings
from toolkit.builtin.variables import processing_variables, sm_variables
from toolkit.environment import ProcessingEnv, TrainingEnv

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "environment.md").read_text()
SETTING = re.compile(r"(TOOLKIT|SAGEMAKER)_[A-Z0-9_]+")
# Variables read outside the table on purpose, each with the reason.
NOT_SETTINGS = {
    # the node helper's hand-off to its ranks, read inside the user's process, where the toolkit is not imported
    "TOOLKIT_TORCHRUN_STATE",
}


def documented(name: str) -> bool:
    if f"`{name}`" in DOC:
        return True
    # SM_CHANNEL_TRAIN is covered by the SM_CHANNEL_<NAME> row
    return any(name.startswith(p.split("<")[0]) for p in re.findall(r"`([A-Z_]+_<NAME>)`", DOC))


def code_files() -> list[Path]:
    """The toolkit's modules and the first-party plugins' (not their tests, not build/ copies). The
    compat stand-ins are left out: they mirror the AWS packages, which read os.environ themselves."""
    files = [p for p in (ROOT / "toolkit").rglob("*.py") if "compat" not in p.parts]
    for plugin in (ROOT / "plugins").iterdir():
        files += [p for p in plugin.glob("toolkit_*/*.py")]
    return files


def reads(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, name, how) for every TOOLKIT_*/SAGEMAKER_* name a mapping is read with, directly
    (``env.get("X")``, ``env["X"]``, ``"X" in env``) or through the table (``settings.read(env, "X")``,
    ``settings.is_set(env, "X")``, ``env.setting("X")`` for plugins, ``TABLE["X"]``)."""

    def name(node: ast.AST) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and (SETTING.fullmatch(node.value) or node.value in settings.TABLE) else None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if func in ("read", "is_set", "read_setting", "setting"):
                found += [(node.lineno, name(arg), "table") for arg in node.args[:2] if name(arg)]
            elif func in ("get", "pop") and node.args and name(node.args[0]) \
                    and isinstance(node.func, ast.Attribute):
                found.append((node.lineno, name(node.args[0]), "direct"))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and name(node.slice):
            on_table = isinstance(node.value, (ast.Name, ast.Attribute)) and \
                (getattr(node.value, "id", None) or getattr(node.value, "attr", None)) == "TABLE"
            found.append((node.lineno, name(node.slice), "table" if on_table else "direct"))
        elif isinstance(node, ast.Compare) and name(node.left) and any(isinstance(op, (ast.In, ast.NotIn))
                                                                        for op in node.ops):
            found.append((node.lineno, name(node.left), "direct"))
    return found


def test_the_doc_is_the_table() -> None:
    # tools/environment_doc.py writes the tables of docs/environment.md from toolkit/settings.py
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "environment_doc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in settings.TABLE:
        assert f"| `{name}` |" in DOC


def test_the_doc_check_fails_when_the_doc_is_stale(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import environment_doc
    finally:
        sys.path.remove(str(ROOT / "tools"))
    stale = DOC.replace("| `TOOLKIT_FETCH_ATTEMPTS` | `4` |", "| `TOOLKIT_FETCH_ATTEMPTS` | `5` |")
    assert stale != DOC and environment_doc.render(stale) == DOC


def test_every_variable_the_code_reads_goes_through_the_table() -> None:
    direct, unknown, seen = [], [], set()
    for path in code_files():
        where = path.relative_to(ROOT)
        for line, name, how in reads(ast.parse(path.read_text(), str(path))):
            seen.add(name)
            if name in NOT_SETTINGS:
                continue
            if name not in settings.TABLE:
                unknown.append(f"{where}:{line} {name}")
            if how == "direct" and path.name != "settings.py":
                direct.append(f"{where}:{line} {name}")
    assert {"SAGEMAKER_BASE_DIR", "TOOLKIT_SSH_PORT", "TOOLKIT_TORCHRUN_STATE"} <= seen  # the scan finds them
    assert not unknown, f"read by the code but not in toolkit/settings.py TABLE: {unknown}"
    assert not direct, f"read without settings.read (so without its check and default): {direct}"


def test_every_row_of_the_table_is_read_somewhere() -> None:
    # a row whose name the code never mentions (outside its own row) documents a setting that does nothing
    used = set()
    for path in code_files():
        tree = ast.parse(path.read_text())
        rows = {id(key) for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                and getattr(node.target, "id", None) == "TABLE" and isinstance(node.value, ast.Dict)
                for key in node.value.keys}
        used |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in rows}
    unread = sorted(set(settings.TABLE) - used - {"TOOLKIT_CHECKPOINT_DIR"})  # set by the emulator for the job
    assert not unread, unread


def test_every_exported_variable_is_documented(job: Job) -> None:
    job.hyperparameters({"epochs": 3, "learning-rate": 0.1, "sagemaker_program": "train.py"})
    job.channels("train", "val-set").resources(topology=[{"x": 1}])
    env = TrainingEnv.from_environ(job.environ()).with_changes(source_dir=job.code)
    exported = sm_variables(env)
    assert {"SM_CHANNEL_VAL-SET", "SM_CHANNEL_VAL_SET", "SM_HP_LEARNING-RATE", "SM_HP_LEARNING_RATE"} <= set(exported)
    missing = sorted(n for n in exported if not documented(n))
    assert not missing, f"exported but not in docs/environment.md: {missing}"


def test_every_variable_process_exports_is_documented(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "processingjobconfig.json").write_text(
        '{"ProcessingJobName": "p", "ProcessingInputs": [{"InputName": "raw-data", "S3Input": '
        '{"LocalPath": "/opt/ml/processing/input/raw"}}], "ProcessingOutputConfig": {"Outputs": '
        '[{"OutputName": "train", "S3Output": {"LocalPath": "/opt/ml/processing/train"}}]}}')
    exported = processing_variables(ProcessingEnv.from_environ({}, str(tmp_path)))
    wanted = {"SM_PROCESSING_INPUT_RAW-DATA", "SM_PROCESSING_INPUT_RAW_DATA", "SM_PROCESSING_OUTPUT_TRAIN"}
    assert wanted <= set(exported)
    missing = sorted(n for n in exported if not documented(n))
    assert not missing, f"exported by process but not in docs/environment.md: {missing}"
