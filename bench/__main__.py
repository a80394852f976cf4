"""`python -m bench [names...]`: run the named benchmarks (all by default); a full run writes bench/RESULTS.md."""

import argparse
import time

from . import first_token, lighthouse, live, pages, plans, serving  # noqa: F401  (importing them registers their benchmarks)

# isort: split
from . import (
    attach,  # noqa: F401  (importing it registers its benchmark)
    branches,  # noqa: F401  (importing it registers its benchmark)
    capacity,  # noqa: F401  (last: it is built from the figures above, and runs after them)
)
from .registry import BENCHMARKS
from .report import table, write_results, write_section
from .servers import Servers


def chosen_benchmarks(argv=None):
    """The benchmark names to run, from the command line; an unknown name is an error that lists the known ones."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=f"one of: {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args(argv).names
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; the benchmarks are: {', '.join(BENCHMARKS)}")
    return names or list(BENCHMARKS)


def run(names):
    """Run the benchmarks, sharing servers between them; return their rows in order."""
    servers = Servers()
    rows = []
    try:
        for name in names:
            print(f"{name}: {BENCHMARKS[name].__doc__.splitlines()[0]}", flush=True)
            for row in BENCHMARKS[name](servers):
                print(f"  {row.figure}: {row.measured} (target {row.target}, met: {row.verdict()})", flush=True)
                rows.append(row)
    finally:
        servers.close()
    return rows


def main(argv=None):
    """Run what the command line names, print the table, and record a full run in bench/RESULTS.md."""
    names = chosen_benchmarks(argv)
    started = time.monotonic()
    rows = run(names)
    print()
    print(table(rows))
    if names == list(BENCHMARKS):  # only a full run replaces the recorded results
        write_results(rows, time.monotonic() - started)
        print("\nWritten: bench/RESULTS.md, bench/growth.png")
    elif len(names) == 1 and write_section(names[0], rows, time.monotonic() - started):
        print(f"\nWritten: the {names[0]} block of bench/RESULTS.md")


if __name__ == "__main__":
    main()
