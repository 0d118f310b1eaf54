"""The documentation's relative links and anchors resolve, and the README stays the short front page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "bench" / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", "", text, flags=re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    seen: dict = {}
    for heading in re.findall(r"^#+ (.*)$", prose(path.read_text()), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        yield base if n == 0 else f"{base}-{n}"


def test_slug_matches_github():
    assert slug("Permissions (least privilege)") == "permissions-least-privilege"
    assert slug("How one part is synced (engine `treediff.py`, `safefs.py`, `sync.py`)") == \
        "how-one-part-is-synced-engine-treediffpy-safefspy-syncpy"
    assert slug("When to use which: efs-backup, AWS Backup, EFS replication") == \
        "when-to-use-which-efs-backup-aws-backup-efs-replication"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_and_anchors_resolve(doc):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # absolute URLs are citations, not checked offline
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in set(anchors(dest)):
            broken.append(f"{target}: no such heading in {dest.relative_to(REPO_ROOT)}")
    assert not broken, broken


def test_readme_is_the_short_front_page_in_the_guides_order():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    sections = re.findall(r"^## (.*)$", prose(readme), re.M)
    assert sections == ["Architecture", "Quick start", "Deploy", "Operate", "Restore", "Layout", "Benchmarks",
                        "Where to read on"]
    for doc in sorted((REPO_ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README does not point to docs/{doc.name}"
