"""The "what this shows" paragraph: claims computed from one run's figures (pure).

Every sentence here is built from the cells passed in: which pool is faster,
by how much, whether time grows linearly, where failures happened. Nothing
is fixed text; a claim whose figures are missing is left out, never guessed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, geometric_mean, median

from app.sizes import format_size
from orchestrator.report.model import Cell, optional_float

TIMES_SIGN = "\N{MULTIPLICATION SIGN}"
LINEAR_R2 = 0.95  # a least-squares line this good is called "close to linear"


def seconds(value: float) -> str:
    """``0.45 ms``, ``0.123 s``, ``12.3 s``, ``123 s``: three significant figures or so."""
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value:.3f} s"


def times(ratio: float) -> str:
    """``2.35x``, ``12.4x`` (with the multiplication sign)."""
    return f"{ratio:.1f}{TIMES_SIGN}" if ratio >= 10 else f"{ratio:.2f}{TIMES_SIGN}"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def series_name(cell: Cell, with_pool: bool = True) -> str:
    """``upload 10MiB, thread pool``: what a series of cells has in common."""
    name = cell.operation if cell.protocol == "stream" else f"{cell.operation} ({cell.protocol})"
    name += f" {format_size(cell.volume)}"
    if with_pool:
        name += f", {cell.server_pool} pool"
    if cell.client_pool != "thread":
        name += f", {cell.client_pool} clients"
    return name


# --- time per client against the number of clients -----------------------------------


@dataclass(frozen=True)
class Scaling:
    """How time per client grows with the number of clients in one series of cells."""

    name: str
    workers: int
    clients: tuple[int, ...]
    times: tuple[float, ...]
    slope: float | None  # seconds per extra client, least squares (3+ points)
    r2: float | None

    @property
    def growth(self) -> float:
        return self.times[-1] / self.times[0] if self.times[0] > 0 else float("inf")

    @property
    def clients_ratio(self) -> float:
        return self.clients[-1] / self.clients[0]

    @property
    def linear(self) -> bool:
        return self.r2 is not None and self.r2 >= LINEAR_R2 and (self.slope or 0) > 0


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b x``: (a, b, R²). Needs two distinct x values."""
    mx, my = fmean(xs), fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def scaling_series(cells: Sequence[Cell]) -> list[Scaling]:
    """Time per client against clients, at the run's smallest server worker count, per series."""
    if not cells:
        return []
    fewest = min(c.workers for c in cells)
    groups: dict[str, dict[int, float]] = defaultdict(dict)
    for cell in cells:
        if cell.workers == fewest and cell.time_mean is not None:
            groups[series_name(cell)][cell.clients] = cell.time_mean
    found = []
    for name, points in groups.items():
        if len(points) < 2:
            continue
        xs = sorted(points)
        ys = [points[x] for x in xs]
        slope = r2 = None
        if len(xs) >= 3:
            _, slope, r2 = fit_line(xs, ys)
        found.append(Scaling(name, fewest, tuple(xs), tuple(ys), slope, r2))
    return found


def scaling_claims(series: Sequence[Scaling]) -> list[str]:
    if not series:
        return []
    workers = series[0].workers
    grows = [s for s in series if s.times[-1] > s.times[0]]
    fitted = [s for s in series if s.r2 is not None]
    text = (
        f"With {plural(workers, 'server worker')}, mean time per client grows with the number of clients "
        f"in {len(grows)} of {plural(len(series), 'series', 'series')} (operation, volume and pool)"
    )
    if fitted:
        linear = [s for s in fitted if s.linear]
        text += (
            f"; of the {len(fitted)} with three or more client counts, {len(linear)} "
            f"{'is' if len(linear) == 1 else 'are'} close to linear (least-squares R² ≥ {LINEAR_R2})"
        )
    steepest = max(series, key=lambda s: s.growth)
    text += (
        f". Steepest: {steepest.name}, from {seconds(steepest.times[0])} at {plural(steepest.clients[0], 'client')} "
        f"to {seconds(steepest.times[-1])} at {steepest.clients[-1]} clients "
        f"({times(steepest.growth)} for {times(steepest.clients_ratio)} the clients"
    )
    if steepest.slope is not None:
        text += f"; {seconds(steepest.slope)} more per extra client, R² {steepest.r2:.2f}"
    return [text + ")."]


# --- comparisons between cells that differ in one setting ------------------------------


def _pairs(
    cells: Sequence[Cell], attribute: str, low: object, high: object, clients: int
) -> dict[str, list[tuple[Cell, Cell]]]:
    """Cells at ``clients`` clients differing only in ``attribute`` (low vs high), by operation."""
    index = {cell.key: cell for cell in cells if cell.clients == clients}
    pairs: dict[str, list[tuple[Cell, Cell]]] = defaultdict(list)
    for cell in index.values():
        if getattr(cell, attribute) == low:
            other = index.get(_replace_key(cell, attribute, high))  # type: ignore[arg-type]
            if other is not None:
                pairs[cell.operation].append((cell, other))
    return pairs


def _replace_key(cell: Cell, attribute: str, value: object) -> tuple[object, ...]:
    fields = ["operation", "protocol", "volume", "clients", "workers", "server_pool", "client_pool"]
    return tuple(value if name == attribute else getattr(cell, name) for name in fields)


def _ratios(pairs: Sequence[tuple[Cell, Cell]], metric: Callable[[Cell], float | None]) -> list[float]:
    found = []
    for low, high in pairs:
        a, b = metric(low), metric(high)
        if a and b and a > 0 and b > 0:
            found.append(b / a)
    return found


def pool_claims(cells: Sequence[Cell]) -> list[str]:
    """Process pool against thread pool at the most clients, per operation."""
    pools = {c.server_pool for c in cells}
    if not {"thread", "process"} <= pools:
        return []
    most = max(c.clients for c in cells)
    claims = []
    for operation, pairs in sorted(_pairs(cells, "server_pool", "thread", "process", most).items()):
        ratios = _ratios(pairs, lambda c: c.throughput)
        if not ratios:
            continue
        if geometric_mean(ratios) < 1:  # express it as the winner's advantage
            ratios = [1 / r for r in ratios]
            winner, loser = "thread", "process"
        else:
            winner, loser = "process", "thread"
        spread = f", from {times(min(ratios))} to {times(max(ratios))}" if len(ratios) > 1 else ""
        mixed = " on average but not in every cell" if min(ratios) < 1 else ""
        claims.append(
            f"At {most} clients the {winner} pool beats the {loser} pool for {operation}s by "
            f"{times(geometric_mean(ratios))}{mixed} in throughput per client ({winner}/{loser}, geometric mean over "
            f"{plural(len(ratios), 'cell')}{spread})."
        )
    return claims


def worker_claims(cells: Sequence[Cell]) -> list[str]:
    """Most against fewest server workers at the most clients, per operation."""
    workers = sorted({c.workers for c in cells})
    if len(workers) < 2:
        return []
    fewest, most_workers = workers[0], workers[-1]
    most = max(c.clients for c in cells)
    claims = []
    for operation, pairs in sorted(_pairs(cells, "workers", fewest, most_workers, most).items()):
        ratios = _ratios(pairs, lambda c: c.time_mean)  # time with many workers / time with few
        if not ratios:
            continue
        speedup = 1 / geometric_mean(ratios)
        verdict = f"{times(speedup)} faster" if speedup >= 1 else f"{times(1 / speedup)} slower"
        claims.append(
            f"At {most} clients, {most_workers} server workers instead of {fewest} make each {operation} "
            f"{verdict} on average (mean time per client, geometric mean over {plural(len(ratios), 'cell')})."
        )
    return claims


# --- failures, agreement, resources ------------------------------------------------


def _shared(cells: Sequence[Cell], among: Sequence[Cell]) -> list[str]:
    """What every failing cell has in common that not every cell has."""
    features = {
        "clients": lambda c: f"{c.clients} clients",
        "workers": lambda c: plural(c.workers, "server worker"),
        "operation": lambda c: f"operation {c.operation}",
        "volume": lambda c: f"volume {format_size(c.volume)}",
        "server_pool": lambda c: f"the {c.server_pool} pool",
    }
    shared = []
    for attribute, describe in features.items():
        values = {getattr(c, attribute) for c in cells}
        if len(values) == 1 and len({getattr(c, attribute) for c in among}) > 1:
            shared.append(describe(cells[0]))
    return shared


def failure_claims(cells: Sequence[Cell]) -> list[str]:
    if not cells:
        return []
    transfers = sum(c.clients_ok + c.clients_failed for c in cells)
    failing = [c for c in cells if c.failed]
    if not failing:
        return [
            f"All {transfers} client transfers in the {plural(len(cells), 'cell')} succeeded, "
            "and the server recorded no failed request."
        ]
    failed = sum(c.clients_failed for c in cells)
    text = f"{failed} of {transfers} client transfers failed, in {len(failing)} of {plural(len(cells), 'cell')}"
    shared = _shared(failing, cells)
    if shared:
        listed = shared[0] if len(shared) == 1 else ", ".join(shared[:-1]) + " and " + shared[-1]
        text += "; every failing cell has " + listed
    causes: Counter[str] = Counter()
    for cell in failing:
        for errors in cell.errors:
            for part in errors.split("; "):
                count, _, cause = part.partition("x ")
                if count.isdigit() and cause:
                    causes[cause] += int(count)
    if causes:
        cause, n = causes.most_common(1)[0]
        text += f". Most frequent cause: “{cause}” ({n} times)"
    return [text + "."]


def agreement_claims(cells: Sequence[Cell]) -> list[str]:
    """Do the server's own records agree with the clients' on successes?"""
    unmeasured = len([c for c in cells if c.server_ok is None])
    cells = [c for c in cells if c.server_ok is not None]
    note = (
        [f"The server's side was not measured in {plural(unmeasured, 'cell')} (a server that keeps no outcome log, "
         "on downloads)."]
        if unmeasured
        else []
    )  # fmt: skip
    if not cells:
        return note
    differ = [c for c in cells if c.clients_ok != c.server_ok]
    if not differ:
        return [
            f"The server's own records count the same successful transfers as the clients in all "
            f"{plural(len(cells), 'cell')}.",
            *note,
        ]
    listed = ", ".join(f"{c.number} ({c.clients_ok} vs {c.server_ok})" for c in differ[:8])
    more = f" and {len(differ) - 8} more" if len(differ) > 8 else ""
    return [
        f"The server's records and the clients' disagree on successful transfers in {len(differ)} of "
        f"{plural(len(cells), 'cell')}: cell (clients vs server) {listed}{more}.",
        *note,
    ]


def resource_claims(cells: Sequence[Cell]) -> list[str]:
    claims = []
    memory = defaultdict(list)
    for cell in cells:
        if cell.server_memory is not None:
            memory[cell.server_pool].append(cell.server_memory)
    if memory:
        parts = [f"{pool} pool up to {max(values):.1f} MiB" for pool, values in sorted(memory.items())]
        claims.append(f"Server container memory at its peak (page cache excluded): {', '.join(parts)}.")
    cpu = [c for c in cells if c.server_cpu is not None]
    if cpu:
        busiest = max(cpu, key=lambda c: c.server_cpu or 0.0)
        claims.append(
            f"The busiest server used {busiest.server_cpu:.0f} % of one core on average, in cell "
            f"{busiest.number} ({busiest.label}); {len(cpu)} of {plural(len(cells), 'cell')} have a CPU figure."
        )
    return claims


# --- UDP ---------------------------------------------------------------------------


def _udp_times(rows: Sequence[Mapping[str, str]]) -> dict[int, dict[str, float]]:
    """payload -> model -> total seconds (the same for every receiver of a cell)."""
    found: dict[int, dict[str, float]] = defaultdict(dict)
    for row in rows:
        value = optional_float(row.get("run_seconds_mean"))
        payload = optional_float(row.get("payload"))
        if value is not None and payload is not None:
            found[int(payload)].setdefault(str(row.get("model")), value)
    return found


def udp_claims(rows: Sequence[Mapping[str, str]], course: Mapping[str, float] | None = None) -> list[str]:
    """Fastest and slowest model per payload size, losses, and the course report's order."""
    claims = []
    for payload, by_model in sorted(_udp_times(rows).items()):
        if len(by_model) < 2:
            continue
        fastest = min(by_model, key=by_model.__getitem__)
        slowest = max(by_model, key=by_model.__getitem__)
        claims.append(
            f"UDP with {payload}-byte datagrams: the fastest model was {fastest} ({seconds(by_model[fastest])} "
            f"to send the file to both receivers), the slowest {slowest} ({seconds(by_model[slowest])}, "
            f"{times(by_model[slowest] / by_model[fastest])})."
        )
        if payload == 1 and course:
            shared = [m for m in course if m in by_model]
            if len(shared) >= 2:
                theirs = sorted(shared, key=course.__getitem__)
                ours = sorted(shared, key=by_model.__getitem__)
                same = "the same order" if theirs == ours else "a different order"
                claims.append(
                    f"The course report ranked these models fastest to slowest {', '.join(theirs)}; "
                    f"this run ranks them {', '.join(ours)}: {same}."
                )
    lost = [optional_float(r.get("lost")) for r in rows]
    intact = sum(int(optional_float(r.get("intact")) or 0) for r in rows)
    runs = sum(int(optional_float(r.get("runs")) or 0) for r in rows)
    if runs:
        known = [x for x in lost if x is not None]
        loss = f"; {int(sum(known))} datagrams lost in all" if known else ""
        claims.append(f"Receivers got the file intact in {intact} of {runs} receptions{loss}.")
    return claims


# --- against the original lab ---------------------------------------------------------


def original_claims(ratios: Sequence[float], excluded: int) -> list[str]:
    """This run's throughput per client relative to the original's, over the cells both have."""
    if not ratios:
        return []
    text = (
        f"Against the original lab's published figures, in the {plural(len(ratios), 'cell')} where both have a "
        f"measured figure, this run's throughput per client is {times(median(ratios))} the original's (median; "
        f"from {times(min(ratios))} to {times(max(ratios))})"
    )
    if excluded:
        text += f"; {plural(excluded, 'more cell')} whose original figure is not a measurement (T, Z, M) are left out"
    return [text + "."]


def tcp_claims(cells: Sequence[Cell]) -> list[str]:
    """All claims about the TCP experiment, most telling first."""
    return [
        *scaling_claims(scaling_series(cells)),
        *pool_claims(cells),
        *worker_claims(cells),
        *failure_claims(cells),
        *agreement_claims(cells),
        *resource_claims(cells),
    ]
