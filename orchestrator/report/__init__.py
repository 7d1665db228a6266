"""Reports of stored runs: ``build_report(folder)`` writes report.md, report.html and charts/*.png.

load.py      read a run folder (I/O)
model.py     summary rows -> typed cells (pure)
insights.py  the "what this shows" claims, computed from the cells (pure)
original.py  the original lab's published figures (data/original-figures.csv) and matching
charts.py    matplotlib PNG charts (Agg, headless)
render.py    blocks -> Markdown, terminal text and one self-contained HTML page with a print style sheet (pure)
pdf.py       report.pdf: the HTML page printed by headless Chromium
build.py     build_report: all of the above, files out
catalog.py   the stored runs, for ``orchestrate.py list``
"""

from orchestrator.report.build import build_report
from orchestrator.report.model import ReportError

__all__ = ["ReportError", "build_report"]
