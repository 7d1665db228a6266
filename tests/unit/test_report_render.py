"""Markdown and HTML rendering of report blocks (pure), and the manifest's rows."""

import base64
import json
from types import SimpleNamespace

from orchestrator.lab.environment import cpu_model, gather_environment, mem_total_bytes
from orchestrator.manifest import build_manifest, write_manifest
from orchestrator.report.manifest import iso_time, manifest_lines
from orchestrator.report.render import Bullets, Figure, Heading, Paragraph, Pre, simple_table, to_html, to_markdown
from orchestrator.settings import Settings
from orchestrator.store import RunFolder, RunState

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
BLOCKS = [
    Heading(1, "Run <x>"),
    Paragraph("a | b & c"),
    Paragraph("careful", note=True),
    Bullets(("one", "two")),
    simple_table(["No", "Cell"], [[1, "upload <10MiB>"]], caption="the caption"),
    Figure("chart.png", "A chart", "its caption"),
    Figure("absent.png", "Not drawn"),
    Pre("tcp:\n  clients: [1]\n"),
]


def test_markdown():
    text = to_markdown(BLOCKS)
    assert text.startswith("# Run <x>\n\na \\| b & c\n\n> careful\n\n- one\n- two\n")
    assert text.count("\n|") >= 3 and "| upload <10MiB> |" in text and "*the caption*" in text
    assert "![A chart](charts/chart.png)" in text
    assert "```\ntcp:\n  clients: [1]\n```" in text


def test_html_escapes_and_embeds():
    page = to_html(BLOCKS, {"chart.png": PNG}, "title & more")
    assert "<title>title &amp; more</title>" in page
    assert "<h1>Run &lt;x&gt;</h1>" in page and "<p>a | b &amp; c</p>" in page
    assert '<p class="note">careful</p>' in page
    assert "<table>" in page and "upload &lt;10MiB&gt;" in page
    assert f'<img src="data:image/png;base64,{base64.b64encode(PNG).decode()}" alt="A chart">' in page
    assert "Not drawn" not in page  # a figure without an image is left out, not a broken link
    assert "<pre>tcp:" in page


def test_cpu_and_memory_parsing():
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert cpu_model("Hardware\t: BCM2835\n") == "BCM2835"
    assert cpu_model("") is None
    assert mem_total_bytes("MemTotal:       16318448 kB\nMemFree: 1 kB\n") == 16318448 * 1024
    assert mem_total_bytes("nothing") is None


def test_manifest_and_its_rows():
    state = {"run_id": "r1", "matrix": "quick", "experiment": "all", "repeat": 2, "shuffle_seed": 42,
             "status": "finished", "started": 0.0, "finished": 60.0}  # fmt: skip
    env = {"docker": {"engine": "27.0.1", "api": "1.46", "cpus": 2, "memory_bytes": 8 * 2**30},
           "git": {"commit": "abc123", "dirty": True}, "unavailable": {"compose.version": "not installed"}}  # fmt: skip
    manifest = build_manifest(state, {"tcp": {}}, env, now=120.0)
    assert manifest["matrix"] == {"tcp": {}} and manifest["shuffle_seed"] == 42
    assert manifest["started"] == iso_time(0.0) and manifest["written"] == iso_time(120.0)
    rows = dict(manifest_lines(manifest))
    assert rows["Docker engine"].startswith("27.0.1 (API 1.46)")
    assert "2 CPUs, 8.0 GiB memory" in rows["Engine resources"]
    assert rows["Git commit"] == "abc123 (with uncommitted changes)"
    assert rows["Random seed"] == "42"
    assert rows["Not recorded"] == "compose.version: not installed"
    assert next(iter(rows)) == "Docker engine"  # a run from before backends: no Backend row
    empty = dict(manifest_lines({}))
    assert empty["Kernel"] == "unknown" and empty["Finished"] == "not finished"
    assert manifest_lines({"backend": "compose"})[0] == ("Backend", "compose")


class Refusing:
    """A docker client whose every call fails, as an engine that went away would."""

    def version(self):
        raise ConnectionError("engine gone")

    info = version

    class images:  # mimics docker.DockerClient.images
        @staticmethod
        def get(name):
            raise ConnectionError("engine gone")


def test_write_manifest_never_fails_a_run(tmp_path):
    settings = Settings(tmp_path, project="p", net_prefix="172.16.99", base_image="python:3.12-slim", env={})
    environment = gather_environment(Refusing(), settings, "")
    lab = SimpleNamespace(environment=lambda: {"backend": "compose", **environment})
    assert environment["docker"]["engine"] is None
    assert "docker.version" in environment["unavailable"] and "images.node" in environment["unavailable"]
    assert environment["lab"]["subnet"] == "172.16.99.0/24"
    folder = RunFolder(tmp_path, "r1")
    folder.path.mkdir()
    (folder.path / "matrix.yaml").write_text("tcp: {clients: [1]}\n")
    path = write_manifest(lab, folder, RunState("r1", "quick", "all", 1, 7, "running", 0.0))
    manifest = json.loads(path.read_text())
    assert manifest["matrix"] == {"tcp": {"clients": [1]}} and manifest["shuffle_seed"] == 7
    assert manifest["finished"] is None and manifest["host"]["cpu_count"]
    # The keys of every earlier manifest, in their order, and the backend before them.
    assert list(manifest)[list(manifest).index("backend") :] == [
        "backend", "docker", "compose", "host", "images", "git", "lab", "unavailable", "written"
    ]  # fmt: skip
    assert "docker.version" in manifest["unavailable"] and set(manifest["git"]) == {"commit", "dirty"}


def test_tall_charts_print_side_by_side():
    import struct

    from orchestrator.report.render import Figure, to_html

    def png(width: int, height: int) -> bytes:
        return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + struct.pack(">II", width, height) + b"\x08\x06\x00\x00\x00"

    page = to_html([Figure("tall.png", "t"), Figure("wide.png", "w")], {"tall.png": png(500, 700),
                   "wide.png": png(1000, 300)}, "x")  # fmt: skip
    assert page.count('<figure class="tall">') == 1 and page.count("<figure>") == 1
    assert "@page { size: A4 portrait" in page and "@media print" in page
