"""Human-readable byte sizes: ``"10MiB"`` <-> ``10485760``.

Binary units (KiB, MiB, GiB) are powers of 1024, as the course's file
generator used (``size_in_mb * 1024 * 1024``); decimal units (KB, MB, GB)
are powers of 1000. A bare number is a count of bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Return the number of bytes in ``text`` (``"10MiB"``, ``"1.5 MB"``, ``4096``)."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"size must not be negative: {text}")
        return text
    match = _SIZE_RE.match(str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {str(text)[:40]!r} (use e.g. 4096, 500KiB, 10MiB, 1GB)")
    number = Decimal(match.group(1))  # exact: no float rounding, no overflow to inf
    if len(match.group(1)) > 30:
        raise ValueError(f"size is too large: {str(text)[:40]!r}…")
    value = number * _UNITS[match.group(2).lower()]
    if value != value.to_integral_value():
        raise ValueError(f"size is not a whole number of bytes: {text!r}")
    return int(value)


def format_size(n: int) -> str:
    """Shortest exact binary spelling of ``n`` bytes: ``10485760`` -> ``"10MiB"``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"
