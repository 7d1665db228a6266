"""The deterministic test files: same bytes everywhere, cached, repaired when changed."""

import hashlib

from app.genfile import ensure_base64, ensure_file, file_name


def test_same_bytes_every_time_and_cached(tmp_path):
    path, digest = ensure_file(str(tmp_path / "a"), 3 * 2**20 + 5)
    again, digest_again = ensure_file(str(tmp_path / "b"), 3 * 2**20 + 5)
    data = open(path, "rb").read()
    assert data == open(again, "rb").read() and len(data) == 3 * 2**20 + 5
    assert digest == digest_again == hashlib.sha256(data).hexdigest()
    name = file_name(len(data))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f".{name}.sha256", name]


def test_a_changed_file_is_regenerated_when_verified(tmp_path):
    path, digest = ensure_file(str(tmp_path), 4096)
    with open(path, "r+b") as f:
        f.write(b"changed")  # e.g. an upload replaced it with other bytes of the same size
    assert ensure_file(str(tmp_path), 4096)[1] == digest  # trusted by size alone...
    ensure_file(str(tmp_path), 4096, verify=True)  # ...but not when verified
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest


def test_base64_copy_is_one_valid_stream(tmp_path):
    import base64

    path, _ = ensure_file(str(tmp_path), 5 * 2**20 + 1)
    encoded = open(ensure_base64(path), "rb").read()
    assert base64.b64decode(encoded, validate=True) == open(path, "rb").read()


def test_writers_with_the_same_pid_in_one_folder_do_not_collide(tmp_path):
    """Containers share the files volume, and two of them can run a process with the same pid.

    Threads of one process have one pid too: four of them make the same
    file at once in one folder. Each must write its own temporary file.
    """
    import threading

    barrier = threading.Barrier(4)
    results, errors = [], []

    def make() -> None:
        barrier.wait()
        try:
            path, digest = ensure_file(str(tmp_path), 6 * 2**20)
            results.append((digest, open(ensure_base64(path), "rb").read(64)))
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(set(results)) == 1 and len(results) == 4
    name = file_name(6 * 2**20)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{name}.sha256", name, f"{name}.b64"]
    assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == results[0][0]
