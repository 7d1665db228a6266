"""A report as a list of blocks, rendered to Markdown or to one self-contained HTML page (pure).

The same blocks give both files: headings, paragraphs, bullet lists, tables
(rendered by tabulate: ``github`` for Markdown, ``html`` for the page),
preformatted text and figures. In the HTML page every figure is embedded as
a ``data:image/png;base64`` URI and the style sheet is inline, so the page
opens offline, from anywhere, on its own.
"""

from __future__ import annotations

import base64
import html
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


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
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
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; white-space: nowrap; }
th { background: #e1e7ee; }
tr:nth-child(even) td { background: #f6f6f6; }
.caption, figcaption { font-size: 0.85em; color: #555; }
.note { background: #fff8e0; border-left: 4px solid #c9a227; padding: 0.5em 0.8em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
</style>
</head>
<body>
$body
</body>
</html>
""")


def to_html(blocks: Sequence[Block], images: Mapping[str, bytes], title: str) -> str:
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
            out.append(f'<figure>\n<img src="{uri}" alt="{html.escape(block.title)}">\n{caption}\n</figure>')
    return PAGE.substitute(title=html.escape(title), body="\n".join(out))
