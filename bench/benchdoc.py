"""docs/benchmarks.md: each bench script owns one ``## `` section of it and replaces only that."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, path: Path = DOCS) -> Path:
    """Put ``section`` (which starts with its ``## Heading`` line) in place of the section with the
    same heading, or at the end when there is none yet; the other sections are left as they are."""
    heading = section.lstrip("\n").split("\n", 1)[0]
    body = section.strip("\n") + "\n"
    text = path.read_text() if path.is_file() else "# Benchmarks\n\nResults of the scripts in bench/.\n"
    start = text.find("\n" + heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + body + (text[end:] if end >= 0 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return path
