"""A report as a list of blocks, rendered to Markdown or to one self-contained HTML page (pure).

The same blocks give both files: headings, paragraphs, bullet lists, tables
(rendered by tabulate: ``github`` for Markdown, ``html`` for the page),
preformatted text and figures. In the HTML page every figure is embedded as
a ``data:image/png;base64`` URI and the style sheet is inline, so the page
opens offline, from anywhere, on its own. Its print style sheet lays it out
on A4 portrait: tables condensed (smaller type, headers wrapped) to the
page's width with every column shown, and no chart or table row cut by a
page break; charts taller than wide are printed two side by side.
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Template

from tabulate import tabulate


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False  # shown as a highlighted note (warnings, caveats)


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table rendered by ``render(tablefmt)``, e.g. ``lambda fmt: render_table(rows, fmt)``."""

    render: Callable[[str], str]
    caption: str = ""


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Figure:
    name: str  # file name under charts/
    title: str
    caption: str = ""


Block = Heading | Paragraph | Bullets | Table | Pre | Figure


def simple_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "", colalign: Sequence[str] | None = None
) -> Table:
    """A Table of plain rows, with numbers shown as given."""

    def render(fmt: str) -> str:
        return tabulate(
            [list(r) for r in rows],
            headers=list(headers),
            tablefmt=fmt,
            disable_numparse=True,
            colalign=list(colalign) if colalign else None,
        )

    return Table(render, caption)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def to_markdown(blocks: Sequence[Block], chart_dir: str = "charts") -> str:
    """The report as GitHub Markdown; figures link to ``chart_dir/<name>``."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(f"> {_md_escape(block.text)}" if block.note else _md_escape(block.text))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {_md_escape(item)}" for item in block.items))
        elif isinstance(block, Table):
            out.append(block.render("github") + (f"\n\n*{_md_escape(block.caption)}*" if block.caption else ""))
        elif isinstance(block, Pre):
            out.append(f"```\n{block.text.rstrip()}\n```")
        elif isinstance(block, Figure):
            caption = f"\n\n*{_md_escape(block.caption)}*" if block.caption else ""
            out.append(f"![{block.title}]({chart_dir}/{block.name}){caption}")
    return "\n\n".join(out) + "\n"


def to_text(blocks: Sequence[Block]) -> str:
    """The blocks for a terminal: plain text (no Markdown escapes), tables in tabulate's ``simple`` format."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(block.text if block.level > 1 else f"{block.text}\n{'=' * len(block.text)}")
        elif isinstance(block, Paragraph | Pre):
            out.append(block.text.rstrip())
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            out.append(block.render("simple") + (f"\n\n{block.caption}" if block.caption else ""))
        elif isinstance(block, Figure):
            out.append(f"[chart: {block.name}]")
    return "\n\n".join(out) + "\n"


PAGE = Template("""<!DOCTYPE html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a;
       max-width: 1200px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: 0.2em; }
h2 { border-bottom: 1px solid #999; padding-bottom: 0.15em; margin-top: 1.8em; }
.scroll { overflow-x: auto; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.82em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; }
td { white-space: nowrap; }
th { background: #e1e7ee; min-width: 3em; }
tr:nth-child(even) td { background: #f6f6f6; }
.caption, figcaption { font-size: 0.85em; color: #555; }
.note { background: #fff8e0; border-left: 4px solid #c9a227; padding: 0.5em 0.8em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
@page { size: A4 portrait; margin: 11mm 9mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 8.5pt; line-height: 1.3; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h1 { font-size: 15pt; margin: 0 0 0.4em; }
  h2 { font-size: 12pt; margin: 1em 0 0.4em; }
  h3 { font-size: 10pt; margin: 0.8em 0 0.3em; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  p, ul { margin: 0.3em 0; }
  .scroll { overflow: visible; margin: 0.4em 0; }
  table { font-size: 6.5pt; width: 100%; table-layout: auto; }
  th, td { padding: 0.5pt 2pt; }
  td { white-space: nowrap; }
  td:last-child { white-space: normal; }
  th { white-space: normal; min-width: 0; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  .caption { break-before: avoid; margin: 0 0 0.5em; }
  figure { margin: 0.3em 0; break-inside: avoid; page-break-inside: avoid; text-align: center; }
  figure img { max-height: 100mm; width: auto; max-width: 100%; border: none; }
  figure.tall img { max-height: 118mm; }
  figure.tall { display: inline-block; width: 49%; vertical-align: top; }
  figcaption { text-align: left; }
  pre { white-space: pre-wrap; font-size: 6.5pt; padding: 0.4em; }
}
</style>
</head>
<body>
$body
</body>
</html>
""")


def _is_tall(png: bytes) -> bool:
    """Is the PNG at least 3/5 as high as it is wide (read from its IHDR header)? Printed two side by side."""
    if len(png) < 24 or png[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", png[16:24])
    return height >= 0.6 * width


def to_html(blocks: Sequence[Block], images: Mapping[str, bytes], title: str, lang: str = "en") -> str:
    """The report as one HTML page; ``images`` maps each figure's name to its PNG bytes."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = ' class="note"' if block.note else ""
            out.append(f"<p{css}>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "\n".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            out.append(f"<ul>\n{items}\n</ul>")
        elif isinstance(block, Table):
            caption = f'\n<p class="caption">{html.escape(block.caption)}</p>' if block.caption else ""
            out.append(f'<div class="scroll">\n{block.render("html")}\n</div>{caption}')
        elif isinstance(block, Pre):
            out.append(f"<pre>{html.escape(block.text.rstrip())}</pre>")
        elif isinstance(block, Figure):
            data = images.get(block.name)
            if data is None:
                continue
            uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            css = ' class="tall"' if _is_tall(data) else ""
            out.append(f'<figure{css}>\n<img src="{uri}" alt="{html.escape(block.title)}">\n{caption}\n</figure>')
    return PAGE.substitute(title=html.escape(title), body="\n".join(out), lang=html.escape(lang))
