"""Wall time of command-line calls, each in a new process (import, open, answer, exit), as a script
or a person calling ``sketchsearch`` sees it.

    python -m benchmarks.cli_startup [--source DIR] [--runs 5] [--photos 20]

``--source`` times another checkout of SketchSearch (e.g. an older commit unpacked with
``git archive``) on a gallery of its own. Targets (issue #26): ``stats`` under 1 s; ``search`` of
one sketch under 2 s end to end (that target is at 100k photos; here the gallery is small, so the
figure is the fixed cost of starting, loading the model and embedding one sketch)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"stats --json": 1.0, "search (1 sketch)": 2.0}


def sketchsearch(source: Path, *argv: str | Path) -> float:
    """Run ``sketchsearch ARGV`` from ``source`` in a fresh interpreter; seconds from start to exit."""
    env = {**os.environ, "PYTHONPATH": str(source), "SKETCHSEARCH_DEVICE": "cpu"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, argv)], cwd=source, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sketchsearch {' '.join(map(str, argv))} failed: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout to time (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=20, help="photos in the gallery the commands open")
    args = parser.parse_args()
    source = args.source.resolve()
    sys.path.insert(0, str(ROOT))
    from app.self_test import write_figures

    with tempfile.TemporaryDirectory(prefix="sketchsearch-cli-startup-") as tmp:
        gallery = write_figures(Path(tmp) / "gallery", args.photos)
        data = ["--data-dir", Path(tmp) / "data"]
        sketchsearch(source, *data, "import", gallery[0].parent)
        commands = {
            "stats --json": ["stats", "--json"],
            "verify": ["verify"],
            "attributes set": ["attributes", "set", "1", "gender=male"],
            "search (1 sketch)": ["search", gallery[0], "--top", "10"],
        }
        print(f"source            {source}")
        print(f"gallery           {args.photos} photos; {args.runs} runs each, a new process per run")
        for name, argv in commands.items():
            times = [sketchsearch(source, *data, *argv) for _ in range(args.runs)]
            median = statistics.median(times)
            line = f"{name:18s}median {median:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})"
            if name in TARGETS:
                line += f"  target {TARGETS[name]:.1f} s, ratio {median / TARGETS[name]:.2f}"
            print(line)


if __name__ == "__main__":
    main()
