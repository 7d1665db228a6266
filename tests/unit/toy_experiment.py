"""A toy experiment, written as a new experiment would be: this one module, registered in one line.

It hashes a block of bytes of each cell's size and times it. It needs no
lab (the cell loop hands it whatever lab it was given), so the loop itself
can be tested without Docker.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.experiments.base import CellResult, Experiment, Summary
from orchestrator.matrix import Section, check_keys, positive_ints
from orchestrator.rows import Column, Table
from orchestrator.store import RunFolder

TOY = Table("toy.csv", (Column("cell_id", str, "key"), Column("number", int, "key"), Column("repeat", int, "key"),
                        Column("size", int, "key"), Column("seconds"), Column("sha256", str, "text")))  # fmt: skip


@dataclass(frozen=True)
class ToyCell:
    number: int
    size: int
    repeat: int = 1

    @property
    def id(self) -> str:
        return f"{self.number:03d}-toy-{self.size}B-r{self.repeat}"


class ToyExperiment(Experiment[ToyCell]):
    name = "toy"
    title = "Toy: SHA-256 of a block"
    tables = (TOY,)

    def __init__(self, state: Any = None) -> None:
        super().__init__(state)
        self.ran: list[str] = []
        self.stopped = self.cleaned = 0
        self.interrupt_at: str | None = None  # a cell id: raise KeyboardInterrupt there once, as Ctrl-C would

    @staticmethod
    def parse(section: Any, where: str) -> Section:
        check_keys(where, section, {"sizes"}, ("sizes",))
        sizes = positive_ints(where, "sizes", section["sizes"], 1 << 20)
        return Section(ToyCell(number, size) for number, size in enumerate(sizes, start=1))

    def run_cell(self, lab: Any, folder: RunFolder, cell: ToyCell) -> CellResult:
        if cell.id == self.interrupt_at:
            self.interrupt_at = None
            raise KeyboardInterrupt
        started = time.perf_counter()
        digest = hashlib.sha256(bytes(cell.size)).hexdigest()
        seconds = time.perf_counter() - started
        self.ran.append(cell.id)
        row = {"cell_id": cell.id, "number": cell.number, "repeat": cell.repeat, "size": cell.size,
               "seconds": seconds, "sha256": digest}  # fmt: skip
        return CellResult({TOY: [row]}, f"sha256 {digest[:12]}")

    def stop_programs(self, lab: Any) -> None:
        self.stopped += 1

    def cleanup(self, lab: Any) -> None:
        self.cleaned += 1

    def summarize(self, folder: RunFolder, lang: str = "en") -> Summary:
        merged = TOY.merge(TOY.read(folder.path))
        lines = [f"{m.values['size']} B: {m.repeats} runs, {m.values['sha256'].split('; ')[0][:12]}" for m in merged]
        return Summary("\n".join(lines), "\n".join(lines), failures=0, where=str(folder.path / TOY.file))
