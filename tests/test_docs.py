"""The documents stand alone: README's first commands, and links that resolve.

README.md is the front page and the package's long description; the guides
live in docs/. Every relative link in them must reach a file of the
repository, and every ``#anchor`` a heading of the page it names, so a
moved section cannot leave a dead link behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) outside code; images and autolinks are not used in these documents.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of ``path``."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    ids = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        ids.add(slug)
    return ids


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_opens_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# seatgate"
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert lines.index("```sh") == 2
    assert block[0].startswith("scripts/setup && .venv/bin/seatgate demo ")
    assert block[1].startswith("scripts/test ")


def test_readme_links_every_guide() -> None:
    linked = set(links(REPO / "README.md"))
    for guide in ("operator", "licensing", "vendor", "contributing"):
        assert f"docs/{guide}.md" in linked


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_a_heading(document: Path) -> None:
    found = links(document)
    assert found, f"{document.name} links nothing"
    for target in found:
        file_part, _, anchor = target.partition("#")
        page = (document.parent / file_part).resolve() if file_part else document
        assert page.exists(), f"{document.name}: {target} does not exist"
        assert page.is_relative_to(REPO), f"{document.name}: {target} leaves the repository"
        if anchor:
            assert anchor in anchors(page), f"{document.name}: no heading for {target}"
