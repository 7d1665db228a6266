from pathlib import Path

import pytest

from orchestrator.errors import LabError
from orchestrator.matrix import parse_matrix
from orchestrator.results import MERGED_FIELDS, RunFolder, RunState, new_run_id, read_csv, write_csv

MATRIX = parse_matrix(
    {"tcp": {"operations": "upload", "volumes": "1MiB", "clients": 2, "server_workers": 1, "server_pools": "thread"}},
    "m",
)


def make_folder(tmp_path: Path) -> RunFolder:
    folder = RunFolder(tmp_path, "run-1")
    folder.create(MATRIX, RunState("run-1", "m.yaml", "all", 1, 7, "running", 0.0))
    return folder


def test_state_round_trip_and_no_overwrite(tmp_path):
    folder = make_folder(tmp_path)
    assert folder.load_state().shuffle_seed == 7
    assert parse_matrix(folder.matrix_data(), "m").tcp == MATRIX.tcp
    with pytest.raises(LabError, match="already exists"):
        make_folder(tmp_path)


def test_damaged_or_missing_state_is_a_clear_error(tmp_path):
    with pytest.raises(LabError, match="no run to resume"):
        RunFolder(tmp_path, "nope").load_state()
    folder = make_folder(tmp_path)
    (folder.path / "run.json").write_text("{not json")
    with pytest.raises(LabError, match="damaged"):
        folder.load_state()


def test_rows_of_a_cut_off_cell_are_dropped(tmp_path):
    folder = make_folder(tmp_path)
    folder.append_cell("c1", [{"client": "1", "status": "ok"}], [{"status": "ok"}], {"cell_id": "c1", "number": 1})
    # the second cell was killed after its client rows, before its summary
    folder.append("clients.csv", [{"cell_id": "c2", "client": "1", "status": "ok"}])
    folder.drop_unfinished()
    assert [r["cell_id"] for r in read_csv(folder.path / "clients.csv")] == ["c1"]
    assert [r["cell_id"] for r in read_csv(folder.path / "server.csv")] == ["c1"]
    assert [r["cell_id"] for r in folder.finished_cells()] == ["c1"]


def test_run_ids_are_safe_folder_names():
    assert new_run_id("my matrix/../x", now=0).endswith("-my-matrix----x")


def test_a_resumed_run_of_an_older_version_gets_the_new_columns(tmp_path):
    folder = make_folder(tmp_path)
    old_fields = [f for f in MERGED_FIELDS["summary.csv"] if f not in ("server_cpu_seconds", "cpu_problems")]
    write_csv(folder.path / "summary.csv", old_fields, [{"cell_id": "c1", "number": 1, "server_cpu_percent": 12.5}])
    folder.drop_unfinished()
    folder.append("summary.csv", [{"cell_id": "c2", "number": 2, "server_cpu_seconds": 0.25}])
    first, second = read_csv(folder.path / "summary.csv")
    assert (first["cell_id"], first["server_cpu_percent"], first["server_cpu_seconds"]) == ("c1", "12.5", "")
    assert (second["cell_id"], second["server_cpu_seconds"], second["server_cpu_percent"]) == ("c2", "0.25", "")


def test_a_file_with_columns_this_version_does_not_know_is_not_resumed(tmp_path):
    folder = make_folder(tmp_path)
    write_csv(folder.path / "summary.csv", ["cell_id", "mystery"], [{"cell_id": "c1", "mystery": "x"}])
    with pytest.raises(LabError, match="mystery"):
        folder.drop_unfinished()
    assert read_csv(folder.path / "summary.csv") == [{"cell_id": "c1", "mystery": "x"}]  # left as it was
