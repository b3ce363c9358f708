"""A report document -> a self-contained HTML file (figures embedded as base64 PNG, no scripts,
no external resources: it opens offline in any browser) and a Markdown file with its PNG figures
in `figures/` beside it.

The document is plain data (`Document`, `Section`, `Table`, `Bullets`, `Pre`, paragraphs as
strings, figures as `FigureSpec`); text uses two pieces of markup, `backticks` for code and
[text](target) for a link. Output
is deterministic: the same document gives the same Markdown and HTML text.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from .figures import FigureSpec, png_bytes

FIGURES_DIR = "figures"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    align: str = ""          # one letter per column, l or r (default: l for the first, r after)


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Pre:
    text: str


Block = Union[str, Table, Bullets, Pre, FigureSpec]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> list[FigureSpec]:
        out = []
        for blocks in [self.intro] + [s.blocks for s in self.sections]:
            out += [b for b in blocks if isinstance(b, FigureSpec)]
        return out


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _align(t: Table) -> str:
    return t.align or ("l" + "r" * (len(t.columns) - 1))


# -- Markdown -------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    al = _align(t)
    lines = ["| " + " | ".join(_md_cell(c) for c in t.columns) + " |",
             "|" + "|".join("---:" if a == "r" else ":---" for a in al) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    out = "\n".join(lines)
    if t.caption:
        out += f"\n\n{t.caption}"
    return out


def to_markdown(doc: Document, figure_paths: dict[str, str]) -> str:
    """The document as Markdown; figures link to `figure_paths[name]` (relative paths)."""
    parts = [f"# {doc.title}"]
    number = 0

    def block(b: Block) -> str:
        nonlocal number
        if isinstance(b, str):
            return b
        if isinstance(b, Bullets):
            return "\n".join(f"- {x}" for x in b.items)
        if isinstance(b, Pre):
            return "```\n" + b.text.rstrip("\n") + "\n```"
        if isinstance(b, Table):
            return _md_table(b)
        number += 1
        return (f"![{b.title}]({figure_paths[b.name]})\n\n"
                f"**Figure {number}. {b.title}.** {b.caption}")

    parts += [block(b) for b in doc.intro]
    if len(doc.sections) > 1:
        parts.append("Contents: " + " · ".join(f"[{s.title}](#{_anchor(s.title)})" for s in doc.sections))
    for s in doc.sections:
        parts.append(f"## {s.title}")
        parts += [block(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; color: #1d1d1f; line-height: 1.5; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.35em; margin-top: 2em; border-bottom: 1px solid #e5e5e5; padding-bottom: .2em; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .92em; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .8em; overflow-x: auto; line-height: 1.35; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; display: block; overflow-x: auto;
        max-width: 100%; }
th, td { border: 1px solid #d8d8d8; padding: .25em .6em; }
th { background: #f2f2f2; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.l, th.l { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .95em; color: #333; margin-top: .4em; }
nav { font-size: .95em; }
.caption { font-size: .95em; color: #333; }
"""


_LINK = re.compile(r"\[([^\]]+)\]\(([^()\s\"]+)\)")


def _inline(text: str) -> str:
    """Escape, then `code` spans and [links](target) outside them."""
    parts = str(text).split("`")
    out = []
    for i, p in enumerate(parts):
        out.append(f"<code>{html.escape(p)}</code>" if i % 2 else
                   _LINK.sub(r'<a href="\2">\1</a>', html.escape(p)))
    if len(parts) % 2 == 0:  # unbalanced backtick: keep it literal
        return html.escape(str(text))
    return "".join(out)


def to_html(doc: Document, figure_png: dict[str, bytes]) -> str:
    """The document as one self-contained HTML page (figures as data: URIs)."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',
           f"<title>{html.escape(doc.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{_inline(doc.title)}</h1>"]
    number = 0

    def block(b: Block) -> str:
        nonlocal number
        if isinstance(b, str):
            return f"<p>{_inline(b)}</p>"
        if isinstance(b, Bullets):
            return "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b.items) + "</ul>"
        if isinstance(b, Pre):
            return f"<pre>{html.escape(b.text.rstrip(chr(10)))}</pre>"
        if isinstance(b, Table):
            al = _align(b)
            head = "".join(f'<th class="{a}">{_inline(c)}</th>' for c, a in zip(b.columns, al))
            body = "".join("<tr>" + "".join(f'<td class="{a}">{_inline(c)}</td>' for c, a in zip(row, al))
                           + "</tr>" for row in b.rows)
            cap = f'<p class="caption">{_inline(b.caption)}</p>' if b.caption else ""
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{cap}"
        number += 1
        data = base64.b64encode(figure_png[b.name]).decode("ascii")
        return (f'<figure id="fig-{html.escape(b.name)}"><img alt="{html.escape(b.title)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption><b>Figure {number}. {_inline(b.title)}.</b> {_inline(b.caption)}</figcaption></figure>")

    out += [block(b) for b in doc.intro]
    if len(doc.sections) > 1:
        out.append("<nav>Contents: " + " · ".join(
            f'<a href="#{_anchor(s.title)}">{html.escape(s.title)}</a>' for s in doc.sections) + "</nav>")
    for s in doc.sections:
        out.append(f'<h2 id="{_anchor(s.title)}">{_inline(s.title)}</h2>')
        out += [block(b) for b in s.blocks]
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# -- files ----------------------------------------------------------------------------------------

def draw_all(doc: Document) -> dict[str, bytes]:
    """Draw every figure of the document once: name -> PNG bytes."""
    out = {}
    for spec in doc.figures():
        if spec.name in out:
            raise ValueError(f"two figures are named {spec.name!r}")
        out[spec.name] = png_bytes(spec.draw())
    return out


def figure_paths(doc: Document, stem: str = "report") -> dict[str, str]:
    """Figure name -> its file, relative to the Markdown file: figures/STEM-NAME.png."""
    return {f.name: f"{FIGURES_DIR}/{stem}-{f.name}.png" for f in doc.figures()}


def write(doc: Document, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
    """Write OUT/STEM.html, OUT/STEM.md and OUT/figures/*.png; return the two paths."""
    out = Path(out_dir)
    figdir = out / FIGURES_DIR
    figdir.mkdir(parents=True, exist_ok=True)
    pngs = draw_all(doc)
    paths = figure_paths(doc, stem)
    for name, data in pngs.items():
        (out / paths[name]).write_bytes(data)
    # figures of an earlier version of this report that this one no longer has
    for old in figdir.glob(f"{stem}-*.png"):
        if f"{FIGURES_DIR}/{old.name}" not in paths.values():
            old.unlink()
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    md_path.write_text(to_markdown(doc, paths))
    html_path.write_text(to_html(doc, pngs))
    return html_path, md_path
