"""report.html in a real browser: headless Chromium renders it to PNG, and the picture shows tables and charts."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from orchestrator.report import build_report

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "run-small"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((found for name in BROWSERS if (found := shutil.which(name))), None)
WIDTH, HEIGHT = 1280, 5000
TABLE_HEADER = np.array([0xE1, 0xE7, 0xEE]) / 255  # th background in the report's style sheet (charts never use it)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--hide-scrollbars", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary: apt-get install chromium (Debian) to run this test")
def test_headless_chromium_renders_tables_and_charts(tmp_path):
    folder = tmp_path / "run-small"
    shutil.copytree(FIXTURE, folder)
    page = build_report(folder)
    html = page.read_text()
    assert html.count("<table") >= 5
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)) >= 8

    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri(), profile=tmp_path / "p")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    painted = (pixels < 0.9).any(axis=2).mean()
    assert painted > 0.03, f"the page is blank ({painted:.1%} of pixels painted)"
    # Tables: their header cells' background, many pixels of it.
    header_cells = (np.abs(pixels - TABLE_HEADER) < 0.006).all(axis=2).sum()
    assert header_cells > 5000, f"no rendered table headers ({header_cells} px)"
    # Charts: the page's own styles are grey; saturated colour comes from the embedded PNGs.
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 0.35).mean()
    assert colour > 0.001, f"no chart visible ({colour:.2%} of pixels in colour)"

    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") == html.count("<table")
    assert dom.stdout.count("<img ") == html.count("<img ")
