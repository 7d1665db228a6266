"""The nodes run with least privilege: checked on the running lab, not on the Compose file."""

from __future__ import annotations

import pytest

from app.contract import NODES, SERVER_NODE
from orchestrator.errors import LabError
from orchestrator.settings import pids_limits

NET_ADMIN = 1 << 12  # bit of CAP_NET_ADMIN in /proc/<pid>/status

# Every process of the node with its user id and capability sets, from /proc (this exec's own shell excluded).
PROCESSES = r"""
for status in /proc/[0-9]*/status; do
  pid=${status#/proc/}; pid=${pid%/status}
  [ "$pid" = "$$" ] && continue
  awk -v pid="$pid" '/^Uid:/{u=$2} /^CapEff:/{e=$2} /^CapBnd:/{b=$2} /^Name:/{n=$2}
      END {if (n != "") print pid, n, u, e, b}' "$status" 2>/dev/null
done
"""


@pytest.mark.parametrize("service", NODES)
def test_the_container_is_confined(lab, service):
    node = lab.node(service)
    node.container.reload()
    host = node.container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and [c.removeprefix("CAP_") for c in host["CapAdd"]] == ["NET_ADMIN"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["ReadonlyRootfs"] is True and not host["Privileged"]
    assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
    assert host["PidsLimit"] == pids_limits(lab.settings.env)[service]
    assert node.container.attrs["Config"]["User"] == "progjar"


@pytest.mark.parametrize("service", NODES)
def test_programs_run_unprivileged_and_only_the_named_places_are_writable(lab, service):
    node = lab.node(service)
    rows = [line.split() for line in node.check(["sh", "-c", PROCESSES]).splitlines() if line.strip()]
    programs = [row for row in rows if row[1] not in ("timeout", "sh", "awk")]  # this check's own helpers
    assert programs, rows
    for pid, name, uid, effective, bounding in programs:
        assert uid != "0", f"{service}: {name} (pid {pid}) runs as root"
        assert int(effective, 16) == 0, f"{service}: {name} (pid {pid}) has capabilities {effective}"
        assert int(bounding, 16) == NET_ADMIN, f"{service}: {name} (pid {pid}) may gain {bounding}"
    if service == SERVER_NODE:
        assert any(name == "python" for _, name, *_ in programs), "the file server is not running"

    denied = node.exec(["touch", "/opt/progjar/x"])
    assert denied.exit_code != 0 and "Read-only file system" in denied.output
    places = ["/results", "/data/files", "/tmp"] + (["/srv/files"] if service == SERVER_NODE else [])
    for place in places:
        node.check(["sh", "-c", f'echo ok > "{place}/.probe" && rm "{place}/.probe"'])


def test_only_root_changes_the_network(lab):
    node = lab.node("alpine-3")
    refused = node.exec(["iptables", "-S", "INPUT"])
    assert refused.exit_code != 0 and "Permission denied" in refused.output
    assert "-P INPUT ACCEPT" in node.check(["iptables", "-S", "INPUT"], root=True)


def test_a_recreated_server_gets_its_process_limit_again(lab):
    lab.restart_server("thread", 2, "/results/server/hardening.csv", 30)
    try:
        server = lab.node(SERVER_NODE)
        server.container.reload()
        assert server.container.attrs["HostConfig"]["PidsLimit"] == pids_limits(lab.settings.env)[SERVER_NODE]
    finally:
        lab.restore_server()


def test_volumes_left_by_a_lab_that_ran_as_root_are_handed_over_at_up(lab):
    node = lab.node("alpine-2")
    node.check(["sh", "-c", "echo kept > /data/files/old-file"])
    node.check(["chown", "-R", "root:root", "/data/files", "/results"], root=True)
    assert node.exec(["touch", "/results/x"]).exit_code != 0  # as an older version left them
    said: list[str] = []
    lab.say = said.append
    try:
        lab.up()
    finally:
        lab.say = print
    assert any("/data/files" in line and "older lab" in line for line in said), said
    node = lab.node("alpine-2")
    node.check(["touch", "/results/x", "/data/files/y"])
    assert node.check(["cat", "/data/files/old-file"]).strip() == "kept"
    node.check(["rm", "-f", "/results/x", "/data/files/y", "/data/files/old-file"])


def test_root_commands_leave_no_helper_container_even_when_cut_short(lab):
    from orchestrator.lab import ROOT_HELPER

    node = lab.node("alpine-3")
    with pytest.raises(LabError, match="stopped after"):
        node.exec(["sleep", "30"], time_limit=1, root=True)
    helpers = lab.client.containers.list(all=True, filters={"label": f"{ROOT_HELPER}={lab.settings.project}"})
    assert helpers == []


def test_a_chown_cut_short_is_finished_at_the_next_up(lab):
    """Only some files root's (the top folder already handed over): they are found and handed over too."""
    node = lab.node("alpine-2")
    node.check(["sh", "-c", "mkdir -p /results/half && echo kept > /results/half/file"])
    node.check(["chown", "root:root", "/results/half/file"], root=True)
    lab.up()
    node = lab.node("alpine-2")
    node.check(["sh", "-c", "echo more >> /results/half/file"])
    node.check(["rm", "-rf", "/results/half"])
