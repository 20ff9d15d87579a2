"""Every hook is documented in docs/hooks.md with its exact signature, and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from toolkit import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("toolkit_"))


def signature_line(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_there_are_hooks() -> None:
    assert "toolkit_launch" in HOOKS and "toolkit_fetch_code" in HOOKS


def test_every_hook_is_documented_with_its_signature() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    missing = [name for name in HOOKS if f"### {name}\n" not in doc]
    assert not missing, f"hooks without a section in docs/hooks.md: {missing}"
    wrong = [signature_line(name) for name in HOOKS if signature_line(name) not in doc]
    assert not wrong, f"docs/hooks.md lacks these exact signatures: {wrong}"


def test_documentation_names_no_hook_that_does_not_exist() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^### (toolkit_\w+)$", doc, re.M))
    assert documented <= set(HOOKS), f"documented but not defined: {documented - set(HOOKS)}"


def test_every_hook_has_a_test() -> None:
    files = [*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "plugins").rglob("test_*.py")]
    tests = "\n".join(p.read_text() for p in files)
    untested = [n for n in HOOKS if not re.search(rf"def test_hook_{n[len('toolkit_'):]}\w*\(", tests)]
    assert not untested, f"hooks with no test_hook_<name> test: {untested}"
