"""The host side on the oldest Python the README names: Debian 12's /usr/bin/python3 (3.11.2)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")

SCRIPT = """
import importlib.util, io, sys, tarfile
from pathlib import Path
# The module alone, by its path: the lab package around it loads the docker SDK, which this Python may lack.
spec = importlib.util.spec_from_file_location("archive", "orchestrator/lab/archive.py")
archive_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(archive_module)
extract_stream = archive_module.extract_stream

data = io.BytesIO()
with tarfile.open(fileobj=data, mode="w") as archive:
    info = tarfile.TarInfo("cell/clients.csv")
    info.size = 4
    archive.addfile(info, io.BytesIO(b"a,b\\n"))
raw = data.getvalue()
extract_stream([raw[i : i + 100] for i in range(0, len(raw), 100)], Path(sys.argv[1]))
print(sys.version_info[:3], (Path(sys.argv[1]) / "cell" / "clients.csv").read_text().strip())
"""


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no /usr/bin/python3 on this machine")
def test_results_are_unpacked_on_debians_python(tmp_path):
    done = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", SCRIPT, str(tmp_path / "out")],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("a,b")


def test_project_declares_the_python_it_supports():
    assert sys.version_info >= (3, 11)
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
