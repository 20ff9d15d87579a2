"""Links a reader follows go somewhere: every ``[text](file.md#section)`` in README.md and docs/, and
the section each stand-in's NotCovered error sends the user to, exist (GitHub's heading anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.compat.importing import ADVICE, not_covered

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]*)(?:#([^)\s]+))?\)")


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections(page: Path) -> dict[str, str]:
    """Each heading's anchor and the text under it, up to the next heading."""
    parts = re.split(r"^#+ (.*)$", page.read_text(), flags=re.M)
    return {anchor(heading): text for heading, text in zip(parts[1::2], parts[2::2])}


def anchors(page: Path) -> set[str]:
    return set(sections(page))


def local_links(page: Path) -> list[tuple[str, str]]:
    return [(target, section or "") for target, section in LINK.findall(page.read_text())
            if not re.match(r"[a-z]+:", target) and (target.endswith(".md") or (not target and section))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_between_pages_point_at_pages_and_sections_that_exist(page: Path) -> None:
    broken = []
    for target, section in local_links(page):
        path = (page.parent / target) if target else page
        if not path.is_file() or (section and section not in anchors(path)):
            broken.append(f"{target}#{section}")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("package", sorted(ADVICE))
def test_a_stand_ins_error_points_at_the_section_listing_what_it_covers(package: str) -> None:
    message = str(not_covered(f"{package}.nothing_like_this"))
    found = re.search(r"see (docs/[\w.-]+\.md)#([\w-]+)$", message)
    assert found, message
    listed = sections(REPO / found.group(1)).get(found.group(2))
    assert listed is not None, message
    assert package in listed, f"#{found.group(2)} does not list what the stand-in for {package} covers"
