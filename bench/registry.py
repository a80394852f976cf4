"""Benchmarks registered by name, and the rows of the results table they return."""

import statistics
from dataclasses import dataclass

BENCHMARKS = {}


@dataclass
class Row:
    """One line of the results table; met is True, False, or None when the figure has no target."""

    figure: str
    measured: str
    target: str
    met: bool | None
    how: str

    def verdict(self):
        """How the table shows met."""
        return "—" if self.met is None else ("yes" if self.met else "**no**")


def benchmark(name):
    """Register a function `(servers) -> list of Row` under name, in the order of definition."""

    def register(function):
        if name in BENCHMARKS:
            raise ValueError(f"two benchmarks are named {name!r}")
        BENCHMARKS[name] = function
        return function

    return register


def median(values):
    """The median of values (a list or any iterable)."""
    return statistics.median(list(values))


def percentile(values, fraction):
    """The value at fraction (0 to 1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
