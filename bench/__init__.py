"""`make bench` (`python -m bench [names...]`): the product against the model server called directly, and
against its own growth.

Each benchmark is one function registered by name (registry.py); it asks the shared servers it needs
(servers.py) and returns rows for the results table. A full run writes bench/RESULTS.md and
bench/growth.png. Each figure is a median over repeated runs; each comparison is measured side by side
in one run.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The servers and helpers the tests use live in tests/support; the benchmarks share them.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
