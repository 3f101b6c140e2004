"""The documents the code and the docs cite are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted([*(ROOT / "glmtui").rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")])


def test_markdown_links_lead_to_files_of_the_repository() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and ("." in target or "/" in target) and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_code_cites_documents_by_their_place_in_the_repository() -> None:
    """A document named in the code is one of the repository's, by its path (docs/plan-format.md),
    not one of the design notes the project started from, which are not in it."""
    outside = ("DESIGN.md", "PLAN-FORMAT.md")
    cited: dict[str, str] = {}
    for source in SOURCES:
        if source == Path(__file__).resolve():
            continue
        text = source.read_text()
        for name in [*re.findall(r"\bdocs/[\w-]+\.md\b", text), *(name for name in outside if name in text)]:
            cited.setdefault(name, str(source.relative_to(ROOT)))
    missing = {name: where for name, where in cited.items() if not (ROOT / name).exists()}
    assert missing == {}
    assert "docs/architecture.md" in cited, "the pattern finds citations"
