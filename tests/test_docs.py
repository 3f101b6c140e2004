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


DOCS_PAGE = re.compile(r"\bdocs/[\w-]+\.md\b")
TOP_LEVEL = re.compile(r"(?<![\w/.-])[A-Z][A-Z0-9-]{2,}\.md\b")  # README.md; in the code only (tests write such files)


def test_the_code_cites_documents_by_their_place_in_the_repository() -> None:
    """A document the code cites is one of the repository's: a docs/ page by its path
    (docs/plan-format.md), a top-level one by its name in capitals (README.md)."""
    cited: dict[str, str] = {}
    for source in SOURCES:
        text = source.read_text()
        names = DOCS_PAGE.findall(text) + (TOP_LEVEL.findall(text) if source.is_relative_to(ROOT / "glmtui") else [])
        for name in names:
            cited.setdefault(name, str(source.relative_to(ROOT)))
    missing = {name: where for name, where in cited.items() if not (ROOT / name).exists()}
    assert missing == {}
    assert "docs/architecture.md" in cited, "the patterns find citations"
    assert TOP_LEVEL.findall("see NOWHERE" + ".md") == ["NOWHERE.md"]
