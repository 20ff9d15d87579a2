"""Write the settings tables of docs/environment.md from the one table, toolkit/settings.py.

    python tools/environment_doc.py           # rewrite the tables in docs/environment.md
    python tools/environment_doc.py --check   # exit 1 when the page and the table disagree

Each ``<!-- settings: GROUP -->`` line in the page is followed by the table of that group's rows
(up to the next blank line); the prose around the markers is the page's own.
tests/test_environment_documented.py runs ``--check``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolkit.settings import GROUPS, TABLE, Row  # noqa: E402

DOC = ROOT / "docs" / "environment.md"
MARKER = re.compile(r"^<!-- settings: (\w+) -->$")
HEADER = ["| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]


def shown_default(row: Row) -> str:
    if len(row) > 6:
        return str(row[6])
    value: Any = row[0]
    if value is None or value == ():
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"`{value}`"


def table(group: str) -> list[str]:
    """The markdown table of the rows in ``group``, in the table's order."""
    lines = list(HEADER)
    for name, row in TABLE.items():
        _default, kind, allowed, commands, in_group, doc = row[:6]
        if in_group == group:
            read_by = ", ".join(f"`{c}`" for c in commands.split())
            doc += f" One of {', '.join(f'`{c}`' for c in allowed)}." if kind == "choice" else ""
            lines.append(f"| `{name}` | {shown_default(row)} | {read_by} | {doc} |")
    return lines


def render(page: str) -> str:
    """``page`` with the table after each marker replaced by the one generated from TABLE."""
    lines = page.splitlines()
    out: list[str] = []
    seen: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        marker = MARKER.match(lines[i])
        i += 1
        if marker is None:
            continue
        group = marker.group(1)
        if group not in GROUPS:
            raise SystemExit(f"{DOC}: unknown settings group {group!r}; the groups are {', '.join(GROUPS)}")
        seen.append(group)
        out.extend(table(group))
        while i < len(lines) and lines[i].strip():  # the table that was there
            i += 1
    missing = [g for g in GROUPS if g not in seen]
    if missing:
        raise SystemExit(f"{DOC}: no <!-- settings: {missing[0]} --> marker for the group {missing[0]!r}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    page = DOC.read_text(encoding="utf-8")
    wanted = render(page)
    if "--check" in argv:
        if wanted != page:
            print(f"{DOC.relative_to(ROOT)} disagrees with toolkit/settings.py; run python tools/environment_doc.py",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != page:
        DOC.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
