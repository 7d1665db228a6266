import json
from pathlib import Path

import pytest

from orchestrator.errors import LabError, UsageError
from orchestrator.experiments.registry import parse_matrix
from orchestrator.experiments.tcp.rows import CLIENTS, SERVER, SUMMARY
from orchestrator.rows import read_raw as read_csv
from orchestrator.rows import write_csv
from orchestrator.store import RunFolder, RunState, check_run_id, new_run_id

TABLES = (CLIENTS, SERVER, SUMMARY)
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
    assert parse_matrix(folder.matrix_data(), "m").cells("tcp") == MATRIX.cells("tcp")
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
    folder.append_cell({
        CLIENTS: [{"cell_id": "c1", "client": "1", "status": "ok"}], SERVER: [{"cell_id": "c1", "status": "ok"}],
        SUMMARY: [{"cell_id": "c1", "number": 1}],
    })  # fmt: skip
    # the second cell was killed after its client rows, before its summary
    CLIENTS.append(folder.path, [{"cell_id": "c2", "client": "1", "status": "ok"}])
    folder.drop_unfinished(TABLES, SUMMARY)
    assert [r["cell_id"] for r in read_csv(folder.path / "clients.csv")] == ["c1"]
    assert [r["cell_id"] for r in read_csv(folder.path / "server.csv")] == ["c1"]
    assert folder.finished(SUMMARY) == {"c1"}


def test_run_ids_are_safe_folder_names():
    assert new_run_id("my matrix/../x", now=0).endswith("-my-matrix----x")


def test_state_keeps_how_the_run_was_asked_for(tmp_path):
    folder = RunFolder(tmp_path, "run-2")
    folder.create(MATRIX, RunState("run-2", "m.yaml", "all", 1, None, "running", 0.0, lang="id", keep_downloads=True))
    state = folder.load_state()
    assert (state.lang, state.keep_downloads) == ("id", True)


def test_state_written_before_lang_and_keep_downloads_resumes_with_defaults(tmp_path):
    folder = make_folder(tmp_path)
    old = {"run_id": "run-1", "matrix": "m.yaml", "experiment": "all", "repeat": 1, "shuffle_seed": None,
           "status": "interrupted", "started": 0.0, "finished": None}  # fmt: skip
    (folder.path / "run.json").write_text(json.dumps(old))
    state = folder.load_state()
    assert (state.lang, state.keep_downloads, state.status) == ("en", False, "interrupted")


def test_unknown_language_in_state_is_damage(tmp_path):
    folder = make_folder(tmp_path)
    data = json.loads((folder.path / "run.json").read_text())
    (folder.path / "run.json").write_text(json.dumps({**data, "lang": "fr"}))
    with pytest.raises(LabError, match=r"damaged.*'fr'"):
        folder.load_state()


@pytest.mark.parametrize("run_id", ["../x", "..", ".", "a/b", "/tmp/x", ".hidden", "a b", "x;rm", "", "é", "a" * 129])
def test_unsafe_run_ids_are_refused(tmp_path, run_id):
    with pytest.raises(UsageError, match="not a valid run id") as info:
        check_run_id(run_id)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        RunFolder(tmp_path, run_id)


@pytest.mark.parametrize("run_id", ["20261121-093000-quick", "my.run_2", "A", "a" * 128])
def test_safe_run_ids_are_accepted(run_id):
    assert check_run_id(run_id) == run_id


def test_a_resumed_run_of_an_older_version_gets_the_new_columns(tmp_path):
    folder = make_folder(tmp_path)
    old_fields = [f for f in SUMMARY.fields if f not in ("server_cpu_seconds", "cpu_problems")]
    write_csv(folder.path / "summary.csv", old_fields, [{"cell_id": "c1", "number": 1, "server_cpu_percent": 12.5}])
    folder.drop_unfinished(TABLES, SUMMARY)
    SUMMARY.append(folder.path, [{"cell_id": "c2", "number": 2, "server_cpu_seconds": 0.25}])
    first, second = read_csv(folder.path / "summary.csv")
    assert (first["cell_id"], first["server_cpu_percent"], first["server_cpu_seconds"]) == ("c1", "12.5", "")
    assert (second["cell_id"], second["server_cpu_seconds"], second["server_cpu_percent"]) == ("c2", "0.25", "")


def test_a_file_with_columns_this_version_does_not_know_is_not_resumed(tmp_path):
    folder = make_folder(tmp_path)
    write_csv(folder.path / "summary.csv", ["cell_id", "mystery"], [{"cell_id": "c1", "mystery": "x"}])
    with pytest.raises(LabError, match="mystery"):
        folder.drop_unfinished(TABLES, SUMMARY)
    assert read_csv(folder.path / "summary.csv") == [{"cell_id": "c1", "mystery": "x"}]  # left as it was
