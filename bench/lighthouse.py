"""Lighthouse 12 (from npm) with Debian's Chromium against the app under gunicorn: the four category scores
for the phone (Lighthouse's default, mobile) and desktop presets.

`make lighthouse` (or `.venv/bin/python -m bench.lighthouse [URL]`) prints them; `make bench` records them
as the benchmark "lighthouse". Lighthouse is installed into bench/node_modules by the Makefile.
"""

import json
import os
import subprocess
import sys

from support import CHROMIUM, ROOT

from .registry import Row, benchmark
from .servers import bench_gunicorn

LIGHTHOUSE = ROOT / "bench" / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
PRESETS = ("mobile", "desktop")
CHROME_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
    "--disable-sync --no-first-run --disable-quic"
)


def scores(url, preset):
    """{category: score 0-100} and the report's audits, for url under a preset ("mobile" or "desktop")."""
    command = [
        str(LIGHTHOUSE),
        url,
        "--output=json",
        "--output-path=stdout",
        "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-path={CHROMIUM}",
        f"--chrome-flags={CHROME_FLAGS}",
    ]
    if preset == "desktop":
        command.append("--preset=desktop")
    env = {**os.environ, "CHROME_PATH": CHROMIUM}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if finished.returncode != 0:
        raise RuntimeError(f"lighthouse failed ({finished.returncode}): {finished.stderr[-2000:]}")
    report = json.loads(finished.stdout)
    return {name: round(report["categories"][name]["score"] * 100) for name in CATEGORIES}, report["audits"]


def misses(audits):
    """The audits that cost points: id and what Lighthouse shows for each."""
    return [
        f"{name}: {audit.get('displayValue') or audit['title']}"
        for name, audit in audits.items()
        if audit.get("score") is not None
        and audit["score"] < 1
        and audit.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings")
    ]


def run(url):
    """The scores of url for both presets, printed as they come; return {preset: {category: score}}."""
    results = {}
    for preset in PRESETS:
        results[preset], audits = scores(url, preset)
        figures = ", ".join(f"{name} {score}" for name, score in results[preset].items())
        print(f"{preset}: {figures}", flush=True)
        for line in misses(audits) if min(results[preset].values()) < 100 else []:
            print(f"    {line}", flush=True)
    return results


@benchmark("lighthouse")
def lighthouse(servers):
    """Lighthouse 12's four scores for the empty chat (/), phone and desktop presets, the app under gunicorn."""
    with bench_gunicorn() as server:
        results = run(server.url + "/")
    return [
        Row(
            f"Lighthouse {preset}: performance / accessibility / best practices / SEO",
            " / ".join(str(results[preset][name]) for name in CATEGORIES),
            "100 each",
            min(results[preset].values()) == 100,
            f"Lighthouse 12 ({'--preset=desktop' if preset == 'desktop' else 'default mobile preset'}), "
            "Debian's Chromium headless, / of a first visit",
        )
        for preset in PRESETS
    ]


def main(argv=None):
    """Print the scores for a URL given, or for the app started under gunicorn."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        run(argv[0])
        return
    with bench_gunicorn() as server:
        print(f"Lighthouse 12 against {server.url}/ (the app under gunicorn)", flush=True)
        run(server.url + "/")


if __name__ == "__main__":
    main()
