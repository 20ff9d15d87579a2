"""Every hook is documented in docs/hooks.md with its exact signature, and has a test."""

from __future__ import annotations

import ast
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


# The serving hooks still carry their full text in the spec (toolkit_serve no longer: it takes the
# worker object of issue 16); every other hook is explained in one place, docs/hooks.md.
FULL_TEXT_IN_SPEC = {"toolkit_load_handler", "toolkit_load_model", "toolkit_model_defaults", "toolkit_decoder",
                     "toolkit_encoder", "toolkit_media_types"}


def section(doc: str, name: str) -> str:
    return doc.split(f"### {name}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_each_hook_is_one_line_in_the_spec_and_explained_with_an_example_in_the_docs() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    problems = []
    for name in sorted(set(HOOKS) - FULL_TEXT_IN_SPEC):
        summary = (getattr(hookspecs, name).__doc__ or "").strip()
        if not summary or "\n" in summary:
            problems.append(f"{name}: the spec's docstring must be one line (the full text goes in docs/hooks.md)")
        text = section(doc, name)
        if " ".join(summary.replace("``", "`").split()) not in " ".join(text.split()):
            problems.append(f"{name}: docs/hooks.md does not repeat the spec's line {summary!r}")
        if not re.search(rf"```python\n(?:.*\n)*?def {name}\(", text):
            problems.append(f"{name}: docs/hooks.md has no example implementing it")
    assert not problems, "\n".join(problems)


def test_documentation_names_no_hook_that_does_not_exist() -> None:
    doc = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^### (toolkit_\w+)$", doc, re.M))
    assert documented <= set(HOOKS), f"documented but not defined: {documented - set(HOOKS)}"


def hook_tests() -> dict[str, list[tuple[str, str]]]:
    """For each hook, its ``test_hook_<name>*`` tests: (where, the text the test runs), that text being
    the test's own source plus every module-level definition it names (a plugin's source in a
    constant, a plugin class), so that a hook implemented there counts."""
    found: dict[str, list[tuple[str, str]]] = {name: [] for name in HOOKS}
    files = [*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "plugins").rglob("test_*.py")]
    for path in files:
        if ".venv" in path.parts or "build" in path.parts:
            continue
        source = path.read_text()
        tree = ast.parse(source)
        defined = {}
        for node in tree.body:
            targets = [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else getattr(node, "targets", [])
            for target in targets:
                name = getattr(target, "name", None) or getattr(target, "id", None)
                if name:
                    defined[name] = ast.get_source_segment(source, node) or ""
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_")):
                continue
            named = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            text = "\n".join([ast.get_source_segment(source, node) or "", *(defined[n] for n in named if n in defined)])
            for hook in HOOKS:
                if re.fullmatch(rf"test_hook_{hook[len('toolkit_'):]}(_\w*)?", node.name):
                    found[hook].append((f"{path.relative_to(ROOT)}::{node.name}", text))
    return found


def test_every_hook_has_a_test() -> None:
    untested = [name for name, tests in hook_tests().items() if not tests]
    assert not untested, f"hooks with no test_hook_<name> test: {untested}"


def test_every_hook_test_exercises_its_hook() -> None:
    """A test_hook_<name> implements toolkit_<name> in a plugin it registers, calls pm.hook.toolkit_<name>,
    or checks the trace line (TOOLKIT_TRACE_PLUGINS) that shows the hook was called: a name is not a test."""
    idle = [where for name, tests in hook_tests().items() for where, text in tests
            if not re.search(rf"def {name}\(|\.hook\.{name}\(|hook {name}\b", text)]
    assert not idle, f"test_hook_<name> tests that never implement, call or trace toolkit_<name>: {idle}"
