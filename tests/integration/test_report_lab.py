"""The manifest of a run on the real lab: engine, Compose, images and commit, read through the docker SDK."""

import json
import re
import time

from orchestrator.manifest import write_manifest
from orchestrator.store import RunFolder, RunState


def test_manifest_records_the_real_environment(lab, tmp_path):
    folder = RunFolder(tmp_path, "manifest-run")
    folder.path.mkdir()
    (folder.path / "matrix.yaml").write_text("tcp: {operations: [upload]}\n")
    state = RunState("manifest-run", "quick", "all", 1, None, "running", time.time())
    first = json.loads(write_manifest(lab, folder, state).read_text())
    assert first["finished"] is None
    state.status, state.finished = "finished", time.time()
    manifest = json.loads(write_manifest(lab, folder, state).read_text())
    assert manifest["finished"] and manifest["status"] == "finished"
    assert re.match(r"\d+\.\d+", manifest["docker"]["engine"])
    assert manifest["docker"]["cpus"] >= 1 and manifest["docker"]["memory_bytes"] > 0
    assert manifest["compose"]["version"]
    assert manifest["images"]["node"]["id"].startswith("sha256:")
    assert manifest["images"]["base"]["id"].startswith("sha256:")
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["git"]["commit"] or "")
    assert manifest["unavailable"] == {}
