"""The skip policy (conftest.py at the repository's root): with TOOLKIT_TEST_STRICT=1 a skip of any
kind is a failure unless the test is marked may_skip with a reason; without it, skips stay skips.
Checked on a real pytest run of a small suite that uses the repository's own conftest.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import clean_environ

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import pytest

@pytest.fixture
def engine():
    pytest.skip("no container engine")

def test_passes():
    pass

@pytest.mark.skipif(True, reason="needs Open MPI")
def test_skipif_mark():
    pass

@pytest.mark.skip(reason="not built yet")
def test_skip_mark():
    pass

def test_skip_call():
    pytest.skip("needs root")

def test_skip_in_fixture(engine):
    pass

def test_importorskip_in_test():
    pytest.importorskip("no_such_module_for_the_policy_test")

@pytest.mark.may_skip(reason="needs a GPU: CI has none")
def test_may_skip_with_reason():
    pytest.skip("no GPU")

@pytest.mark.may_skip
def test_may_skip_without_reason():
    pytest.skip("no GPU")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("no_such_module_for_the_policy_test")

def test_never_collected():
    pass
'''


def run_suite(tmp_path: Path, strict: bool, *files: str) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = clean_environ(TOOLKIT_TEST_STRICT="1") if strict else clean_environ()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--strict-markers",
                           "--rootdir", str(tmp_path), "-c", "/dev/null", *files], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    # "test_suite.py::test_x PASSED" per test (a skip turned failure in setup shows as ERROR: it
    # failed all the same), "ERROR test_module_skip.py" for a module that failed to collect
    outcomes = {m.group(1).split("::")[-1]: m.group(2).replace("ERROR", "FAILED")
                for m in re.finditer(r"^(\S+::\w+) (PASSED|FAILED|SKIPPED|XFAIL|ERROR)\b", proc.stdout, re.M)}
    outcomes.update({m.group(1): "ERROR" for m in re.finditer(r"^ERROR (\S+\.py)(?: - |$)", proc.stdout, re.M)})
    return outcomes, proc


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_each_kind_of_skip(tmp_path: Path, strict: bool) -> None:
    outcomes, proc = run_suite(tmp_path, strict, "test_suite.py")
    skipped = "FAILED" if strict else "SKIPPED"
    assert outcomes == {
        "test_passes": "PASSED",
        "test_skipif_mark": skipped, "test_skip_mark": skipped, "test_skip_call": skipped,
        "test_skip_in_fixture": skipped, "test_importorskip_in_test": skipped,
        "test_may_skip_with_reason": "SKIPPED",
        "test_may_skip_without_reason": skipped,
        "test_xfail": "XFAIL",
    }, proc.stdout + proc.stderr
    assert proc.returncode == (1 if strict else 0), proc.stdout
    if strict:
        assert "TOOLKIT_TEST_STRICT=1 forbids skips: needs Open MPI" in proc.stdout
        assert "forbids skips: no container engine" in proc.stdout
        assert "may_skip needs a reason" in proc.stdout


def test_a_module_that_skips_while_imported_is_a_collection_error_when_strict(tmp_path: Path) -> None:
    outcomes, proc = run_suite(tmp_path, True, "test_module_skip.py")
    assert outcomes == {"test_module_skip.py": "ERROR"}, proc.stdout
    assert "could not import 'no_such_module_for_the_policy_test'" in proc.stdout
    assert proc.returncode != 0
    _, proc = run_suite(tmp_path, False, "test_module_skip.py")
    assert proc.returncode == 5 and "1 skipped" in proc.stdout, proc.stdout  # 5: no test ran
