"""Experiment matrices: YAML files in, validated cells out (pure logic).

A matrix file (``matrices/quick.yaml``) has a section per experiment (``tcp``,
``udp``; see each experiment's ``cells.py`` for its keys) and optional
``name`` and ``description``. Each section is validated and expanded by its
experiment's parser, so a new experiment brings its own section. A matrix
needs at least one section. ``plan`` turns cells into the order they run in,
with repeats and shuffling, the same way for every experiment.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from app.sizes import parse_size
from orchestrator.errors import MatrixError

MAX_VOLUME = 4 * 1024**3
META_KEYS = {"name", "description"}


class Cell(Protocol):
    """What every experiment's cell has: a number in its matrix, which run it is, and a stable id."""

    @property
    def number(self) -> int: ...

    @property
    def repeat(self) -> int: ...

    @property
    def id(self) -> str: ...


class Section(list):  # type: ignore[type-arg]
    """A validated section of a matrix: its cells (each run once), and how many runs of each it asks for."""

    def __init__(self, cells: Sequence[Any] = (), rounds: int = 1) -> None:
        super().__init__(cells)
        self.rounds = rounds


SectionParser = Callable[[Any, str], Section]


@dataclass(frozen=True)
class Matrix:
    name: str
    description: str
    sections: Mapping[str, Section] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # the file's data, kept with the results

    def cells(self, section: str) -> list[Any]:
        return list(self.sections.get(section, []))


# --- validators the sections share ------------------------------------------------------------


def fail(where: str, message: str) -> MatrixError:
    return MatrixError(f"{where}: {message}")


def _names(keys: set[Any]) -> str:
    return ", ".join(sorted(map(str, keys)))


def as_list(where: str, key: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise fail(where, f"{key} must not be empty")
    return values


def positive_ints(where: str, key: str, value: Any, limit: int) -> list[int]:
    result = []
    for item in as_list(where, key, value):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= limit:
            raise fail(where, f"{key}: {item!r} is not a whole number from 1 to {limit}")
        result.append(item)
    return result


def choices(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    result = []
    for item in as_list(where, key, value):
        if item not in allowed:
            raise fail(where, f"{key}: {item!r} is not one of {', '.join(allowed)}")
        result.append(item)
    return result


def seconds(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise fail(where, f"{key}: {value!r} is not a number of seconds from 0 to 86400")
    return float(value)


def volumes(where: str, value: Any) -> list[int]:
    result = []
    for item in as_list(where, "volumes", value):
        try:
            size = parse_size(item)
        except ValueError as exc:
            raise fail(where, f"volumes: {exc}") from None
        if not 1 <= size <= MAX_VOLUME:
            raise fail(where, f"volumes: {item!r} must be from 1 byte to 4GiB")
        result.append(size)
    return result


def check_keys(where: str, section: Any, known: set[str], required: tuple[str, ...]) -> None:
    """A section is a mapping with only known keys and every required one."""
    if not isinstance(section, dict):
        raise fail(where, "must be a mapping of settings")
    unknown = set(section) - known
    if unknown:
        raise fail(where, f"unknown key(s) {_names(unknown)}; known: {_names(known)}")
    for key in required:
        if key not in section:
            raise fail(where, f"missing key {key!r}")


# --- whole matrices ----------------------------------------------------------------------------

C = TypeVar("C", bound=Cell)


def plan(cells: Sequence[C], repeat: int = 1, shuffle_seed: int | None = None) -> list[C]:
    """The order cells run in: ``repeat`` rounds of them, shuffled if a seed is given.

    Repeats run in rounds (all cells once, then all again) rather than back
    to back, so a slow minute of the machine does not hit one cell only.
    The same seed always gives the same order: a run can be resumed.
    """
    if repeat < 1:
        raise MatrixError(f"--repeat must be at least 1, not {repeat}")
    planned = [replace(cell, repeat=r) for r in range(1, repeat + 1) for cell in cells]  # type: ignore[type-var]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(planned)
    return planned


def parse_matrix(data: Any, name: str, parsers: Mapping[str, SectionParser]) -> Matrix:
    """Validate a matrix file's parsed YAML: each section by its experiment's parser (``registry`` has them)."""
    if not isinstance(data, dict):
        raise fail(name, f"a matrix file must be a YAML mapping with a {_or(parsers)} section")
    unknown = set(data) - META_KEYS - set(parsers)
    if unknown:
        raise fail(name, f"unknown section(s) {_names(unknown)}; known: {_names(META_KEYS | set(parsers))}")
    if not set(data) & set(parsers):
        raise fail(name, f"nothing to run: add a {_or(parsers)} section")
    sections = {key: parse(data[key], f"{name}: {key}") for key, parse in parsers.items() if key in data}
    return Matrix(str(data.get("name", name)), str(data.get("description", "")), sections, data)


def _or(parsers: Mapping[str, SectionParser]) -> str:
    return " or ".join(repr(key) for key in parsers) if len(parsers) < 3 else f"one of {', '.join(parsers)}"


def load_matrix(spec: str, builtin_dir: Path, parsers: Mapping[str, SectionParser]) -> Matrix:
    """A built-in matrix by name (``quick``, ``full``) or a YAML file by path."""
    path = builtin_dir / f"{spec}.yaml"
    if "/" in spec or spec.endswith((".yaml", ".yml")) or not path.is_file():
        path = Path(spec)
    try:
        text = path.read_text()
    except OSError as exc:
        builtin = ", ".join(sorted(p.stem for p in builtin_dir.glob("*.yaml")))
        raise MatrixError(f"cannot read matrix {spec!r}: {exc.strerror} (built-in matrices: {builtin})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MatrixError(f"{path}: not valid YAML: {exc}") from None
    return parse_matrix(data, path.stem if path.parent == builtin_dir else str(path), parsers)
