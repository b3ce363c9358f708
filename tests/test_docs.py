"""The README and docs/ say what the code does: the shipped-sweeps table gives each sweep's real
cell count, every shipped sweep has a row, and every relative link points at a file (and heading)
that exists."""

import re
from pathlib import Path

import pytest

from farm.sweep.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent
SWEEPS_DOC = ROOT / "docs" / "sweeps.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHIPPED = sorted((ROOT / "sweeps").glob("*.toml"))

ROW_RE = re.compile(r"^\|\s*`(sweeps/[^`|]+\.toml)`\s*\|\s*([^|]*?)\s*\|", re.M)
LINK_RE = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# "`sweeps/laptop.toml`: 300 cells", "`sweeps/laptop.toml` (300 cells)"
MENTION_RE = re.compile(r"`(sweeps/[^`]+\.toml)`(?::\s*|\s*\()(\d[\d,]*) cells")


def shipped_table(text: str) -> dict[str, str]:
    """The rows of the table under the '## Shipped sweeps' heading: file -> its cells column."""
    m = re.search(r"^## Shipped sweeps\n(.*?)(?=^#{1,2} |\Z)", text, re.M | re.S)
    assert m, f"{SWEEPS_DOC.relative_to(ROOT)} has no '## Shipped sweeps' section"
    rows = ROW_RE.findall(m.group(1))
    table = dict(rows)
    assert len(table) == len(rows), f"a sweep has two rows: {[f for f, _ in rows]}"
    return table


def real_cells(rel: str) -> int:
    return len(load_plan(ROOT / rel).cells)


def test_the_shipped_sweeps_table_gives_every_real_cell_count():
    table = shipped_table(SWEEPS_DOC.read_text())
    assert set(table) == {p.relative_to(ROOT).as_posix() for p in SHIPPED}, \
        "every file in sweeps/ needs one row in the table, and every row a file"
    wrong = {}
    for rel, cells in table.items():
        real = real_cells(rel)
        if cells.replace(",", "") != str(real):
            wrong[rel] = f"table says {cells!r}, farm plan gives {real}"
    assert not wrong, wrong


def test_every_cell_count_named_in_the_docs_is_the_real_one():
    wrong = {}
    for doc in DOCS:
        for rel, cells in MENTION_RE.findall(doc.read_text()):
            real = real_cells(rel)
            if int(cells.replace(",", "")) != real:
                wrong[f"{doc.relative_to(ROOT)}: {rel}"] = f"says {cells}, farm plan gives {real}"
    assert not wrong, wrong


def test_the_table_check_sees_a_wrong_count_and_a_missing_row():
    text = SWEEPS_DOC.read_text()
    table = shipped_table(text)
    rel = "sweeps/laptop.toml"
    assert table[rel] == str(real_cells(rel))
    broken = re.sub(r"^(\|\s*`sweeps/laptop\.toml`\s*\|\s*)\d+", r"\g<1>270", text, flags=re.M)
    assert shipped_table(broken)[rel] == "270" != str(real_cells(rel))
    dropped = re.sub(r"^\|\s*`sweeps/cluster\.toml`.*\n", "", text, flags=re.M)
    assert "sweeps/cluster.toml" not in shipped_table(dropped)


def _without_code(text: str) -> str:
    """Markdown without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", path.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} +(.+?)\s*#*$", text, re.M)}


def relative_links(doc: Path) -> list[str]:
    return [t for t in LINK_RE.findall(_without_code(doc.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in relative_links(doc):
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(ROOT).as_posix() for d in DOCS])
def test_every_relative_link_points_at_something_that_exists(doc):
    assert relative_links(doc), f"{doc.relative_to(ROOT)}: no link found (does the link pattern still read them?)"
    assert broken_links(doc) == [], doc.relative_to(ROOT)


def test_the_link_check_reads_links_and_sees_a_broken_one(tmp_path):
    doc = tmp_path / "x.md"
    (tmp_path / "there.md").write_text("# Top\n\n## `farm plan`, `farm run`\n")
    doc.write_text("[a](there.md) ![b](img/none.png) [c](https://example.org/x) [d](#here)\n"
                   "[e](there.md#farm-plan-farm-run) [f](there.md#nowhere)\n"
                   "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n# Here\n")
    assert relative_links(doc) == ["there.md", "img/none.png", "#here", "there.md#farm-plan-farm-run",
                                   "there.md#nowhere"]
    assert _anchors(tmp_path / "there.md") == {"top", "farm-plan-farm-run"}
    assert _anchors(doc) == {"here"}
    assert broken_links(doc) == ["img/none.png: no such file", "there.md#nowhere: no heading #nowhere in there.md"]
