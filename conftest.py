"""The skip policy of every test folder (tests/, plugins/ and any added later): one switch.

A test may skip when something it needs is missing (a container engine, Open MPI, torch, root...)
and says why. With ``TOOLKIT_TEST_STRICT=1`` (``bash .ci/run`` sets it, having installed everything)
every such skip is a failure instead, wherever it comes from: a ``skip`` / ``skipif`` mark,
``pytest.skip()`` in a test or a fixture, ``pytest.importorskip()``, a conftest that adds a skip mark.
A module that skips as a whole while it is imported (a module-level ``importorskip``) is a
collection error. xfail is not a skip and is left alone.

The one way out is explicit: ``@pytest.mark.may_skip(reason="...")`` on a test (or ``pytestmark``
on a module) for what CI cannot provide by design, e.g. a GPU. Without the switch nothing changes.

This file sits at the repository's root so that pytest loads it for every folder under it.
"""

from __future__ import annotations

import os
from typing import Any, Generator

import pytest

STRICT_VARIABLE = "TOOLKIT_TEST_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_VARIABLE, "") == "1"


def _reason(longrepr: Any) -> str:
    """The skip's reason from a report's longrepr: (path, line, 'Skipped: why') for a skip."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, message = longrepr
        return f"{message.removeprefix('Skipped: ')} ({path}:{line})" if path else message
    return str(longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "may_skip(reason): this test may skip even under TOOLKIT_TEST_STRICT=1 (say why CI cannot run it)")


def pytest_report_header(config: pytest.Config) -> str:
    if strict():
        return f"{STRICT_VARIABLE}=1: a skipped test fails (unless marked may_skip)"
    return f"{STRICT_VARIABLE} unset: tests may skip when what they need is missing"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not (strict() and report.skipped) or hasattr(report, "wasxfail"):
        return
    allowed = item.get_closest_marker("may_skip")
    if allowed is not None:
        if not (allowed.kwargs.get("reason") or allowed.args):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: may_skip needs a reason (may_skip(reason='why CI cannot run it'))"
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped, and {STRICT_VARIABLE}=1 forbids skips: {_reason(report.longrepr)}\n"
                       "Install what the test needs (bash .ci/run does), or mark it "
                       "@pytest.mark.may_skip(reason=...) if CI cannot provide it by design.")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if strict() and report.outcome == "skipped":
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} skipped while it was collected, and {STRICT_VARIABLE}=1 forbids "
                           f"skips: {_reason(report.longrepr)}")
