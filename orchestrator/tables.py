"""Text tables for a terminal: headers wrapped, tables too wide split in parts (pure)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

TERMINAL_WIDTH = 120
HEADER_WRAP = 13  # a terminal header's words are wrapped to lines of this width


def wrap_header(header: str) -> str:
    return "\n".join(textwrap.wrap(header, HEADER_WRAP, break_long_words=False))


def fit_width(render: Callable[[Sequence[int]], str], count: int, width: int | None) -> list[str]:
    """``render(columns)`` of all ``count`` columns, split into tables of fewer columns (each keeping
    the first, the cell number) until each is at most ``width`` characters wide."""

    def split(columns: Sequence[int]) -> list[str]:
        text = render(columns)
        if width is None or len(columns) <= 2 or max(map(len, text.splitlines())) <= width:
            return [text]
        half = (len(columns) + 1) // 2
        return split(columns[:half]) + split([columns[0], *columns[half:]])

    return split(range(count))
