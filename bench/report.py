"""The results table, and bench/RESULTS.md: its measured block is replaced, the analysis around it is kept.

A benchmark run alone whose name has a block of its own in RESULTS.md (between `<!-- results:NAME:start -->`
and `<!-- results:NAME:end -->`, written by hand once) has that block replaced by its rows."""

import os
import platform
from datetime import datetime, timezone

from support import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def machine():
    """The CPU, core count, Python and kernel this run measured on."""
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    cpu = cpu or platform.processor()
    system = f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}"


def table(rows):
    """The rows as a Markdown table."""
    lines = ["| figure | measured | target | met | how |", "|---|---|---|---|---|"]
    lines += [f"| {row.figure} | {row.measured} | {row.target} | {row.verdict()} | {row.how} |" for row in rows]
    return "\n".join(lines)


def write_results(rows, seconds):
    """Put this run's table between the markers of bench/RESULTS.md (created if missing)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"Measured {stamp} on {machine()}, by `make bench` in {seconds:.0f} s.\n\n{table(rows)}\n\n"
        "![Page view time against conversations](growth.png)\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else f"# Benchmark results\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    RESULTS.write_text(f"{before}{START}\n{block}{END}{after}")


def write_section(name, rows, seconds):
    """Put the rows of benchmark name, run alone, in its own block of bench/RESULTS.md; False when it has none."""
    start, end = f"<!-- results:{name}:start -->", f"<!-- results:{name}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if start not in text or end not in text:
        return False
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"Measured {stamp} on {machine()}, by `python -m bench {name}` in {seconds:.0f} s.\n\n{table(rows)}\n"
    before, rest = text.split(start, 1)
    RESULTS.write_text(f"{before}{start}\n{block}{end}{rest.split(end, 1)[1]}")
    return True
