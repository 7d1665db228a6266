"""``report.pdf``: a report's HTML page printed to PDF by headless Chromium (Debian's ``chromium``).

The page's print style sheet (render.py) lays it out on A4: tables condensed
to the page's width, charts never cut by a page break. Chromium is the
renderer because the report's HTML is made for a browser; without one,
``--pdf`` stops with a one-line error naming the package to install.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from orchestrator.errors import LabError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 180  # seconds: a long report prints in a few


class PdfError(LabError):
    """No PDF renderer, or it failed."""


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def print_pdf(page: Path, pdf: Path) -> Path:
    """Print the HTML file ``page`` to ``pdf`` (A4, no header or footer) and return ``pdf``."""
    browser = find_browser()
    if browser is None:
        raise PdfError("no PDF renderer: --pdf needs Chromium (Debian/Ubuntu: sudo apt-get install chromium)")
    partial = pdf.with_name(f".{pdf.name}.part")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="progjar-chromium-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={partial}",
            page.resolve().as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{browser} did not print {page.name} within {TIMEOUT} s") from None
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        partial.unlink(missing_ok=True)
        raise PdfError(f"{browser} could not print {page.name} (exit {done.returncode}): {last}")
    partial.replace(pdf)  # a failed print never leaves a half-written report.pdf
    return pdf
