"""The architecture's rules, read from the code's own imports, so a change cannot quietly break them.

* app/ (the node programs) is standard library only and never imports the host side;
  app/contract.py imports no other node module (the host loads it without loading a program);
* the host imports from app/ only the contract and size parsing;
* report/ reads stored runs: never Docker, the lab, a running experiment, or the CLI;
* the pure modules (matrix, rows, tables, each experiment's cells and rows) touch no Docker;
* between the host's modules imports flow one way: no cycles.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "orchestrator.matrix",
    "orchestrator.rows",
    "orchestrator.tables",
    "orchestrator.experiments.tcp.cells",
    "orchestrator.experiments.tcp.rows",
    "orchestrator.experiments.udp.cells",
    "orchestrator.experiments.udp.rows",
    "orchestrator.check.cases",
    "orchestrator.submission",
]
DOCKER_SIDE = ("docker", "requests", "orchestrator.lab")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in (ROOT / package).rglob("*.py")}


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth of its code (a lazy import counts too).

    ``from package import module`` is an import of that module; ``from module import name``, of the module.
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in ALL else node.module


def is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


APP = modules("app")
HOST = modules("orchestrator")
ALL = {*APP, *HOST}


def test_the_rules_see_the_modules():
    assert "app.contract" in APP and "app.fileserver.pools" in APP
    assert "orchestrator.report.build" in HOST and "orchestrator.experiments.loop" in HOST


@pytest.mark.parametrize("name", sorted(APP))
def test_node_programs_use_the_standard_library_only(name):
    for imported in imports(APP[name]):
        top = imported.split(".")[0]
        assert top == "app" or top in sys.stdlib_module_names, f"{name} imports {imported}"


def test_the_contract_loads_no_node_program():
    found = {i for i in imports(APP["app.contract"]) if is_under(i, ("app",))}
    assert found <= {"app", "app.sizes"}, found


@pytest.mark.parametrize("name", sorted(HOST))
def test_the_host_imports_only_the_contract_from_the_nodes(name):
    found = {i for i in imports(HOST[name]) if is_under(i, ("app",))}
    assert found <= {"app", "app.contract", "app.sizes"}, f"{name} imports {found}"


@pytest.mark.parametrize("name", sorted(n for n in HOST if n.startswith("orchestrator.report")))
def test_the_report_reads_stored_runs_only(name):
    for imported in imports(HOST[name]):
        assert not is_under(imported, DOCKER_SIDE), f"{name} imports {imported}"
        assert not is_under(imported, ("orchestrator.cli", "orchestrator.usecases", "orchestrator.manifest"))
        if is_under(imported, ("orchestrator.experiments",)):
            assert imported.split(".")[3:4] in (["rows"], ["cells"]) or imported.endswith((".rows", ".cells")), (
                f"{name} imports {imported}: the report may use an experiment's rows and cells only"
            )


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_touch_no_docker(name):
    for imported in imports(HOST[name]):
        assert not is_under(imported, DOCKER_SIDE), f"{name} imports {imported}"


def test_host_imports_flow_one_way():
    graph = {name: {i for i in imports(path) if i in HOST and i != name} for name, path in HOST.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [name, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
