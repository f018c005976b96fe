"""Relative links in the user docs point at files (and headings) that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = (
    "index.md",
    "tutorial.md",
    "migrating.md",
    "runtime.md",
    "deployment.md",
    "troubleshooting.md",
    "design_decisions.md",
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path):
    """GitHub-style anchors of a Markdown page's headings."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("name", PAGES)
def test_relative_links_resolve(name):
    page = DOCS / name
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{name}: link to {target} is broken"
        if anchor:
            assert anchor in anchors(file), f"{name}: no heading #{anchor} in {file.name}"
