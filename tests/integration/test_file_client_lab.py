"""The plain file client in alpine-2 against the lab's server, as the README shows it."""

from __future__ import annotations

from tests.integration.conftest import compose


def file_client(*args: str):
    """``docker compose exec alpine-2 python -m app.file_client …``: the default host is alpine-1."""
    return compose("exec", "-T", "alpine-2", "python", "-m", "app.file_client", *args)


def test_file_client_in_alpine_2_round_trips_through_both_protocols(lab):
    node = lab.node("alpine-2")
    node.check(["rm", "-rf", "/tmp/file-client"])
    original = node.check(["sha256sum", "/etc/os-release"]).split()[0]

    up = file_client("upload", "/etc/os-release", "--name", "os-release.txt")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"sha256 {original}" in up.stdout
    for protocol in ("stream", "json"):
        got = file_client("--protocol", protocol, "get", "os-release.txt", "--dir", f"/tmp/file-client/{protocol}")
        assert got.returncode == 0, got.stdout + got.stderr
        saved = node.check(["sha256sum", f"/tmp/file-client/{protocol}/os-release.txt"]).split()[0]
        assert saved == original
    listed = file_client("--protocol", "json", "list")
    assert listed.returncode == 0 and "os-release.txt" in listed.stdout.splitlines()

    refused = file_client("list")
    assert refused.returncode == 2 and "use --protocol json" in refused.stderr

    deleted = file_client("--protocol", "json", "delete", "os-release.txt")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    gone = file_client("get", "os-release.txt", "--dir", "/tmp/file-client/gone")
    assert gone.returncode == 3
    assert gone.stderr.strip() == "file_client: error: server: File not found"
    assert node.check(["ls", "-A", "/tmp/file-client/gone"]).strip() == ""  # nothing saved, no leftover
