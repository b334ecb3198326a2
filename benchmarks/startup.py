"""Start-up time of the app (from the command to a shown window, and to a loaded model), timed
from outside the process by the lines ``--self-test`` prints as it reaches each stage.

    python -m benchmarks.startup [--exe dist/sketchsearch/sketchsearch] [--runs 3]

Without --exe it times the ``sketchsearch`` installed beside this Python (the source install)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_run(command: list[str]) -> dict[str, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    stamps: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cwd:  # away from any source checkout
        start = time.perf_counter()
        process = subprocess.Popen(
            command + ["--self-test"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in process.stdout:
            for stage in ("window shown", "model loaded", "self-test passed"):
                if line.startswith(stage):
                    stamps[stage] = time.perf_counter() - start
        if process.wait() != 0:
            raise SystemExit(f"{' '.join(command)} --self-test failed")
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exe", help="the executable to time (default: sketchsearch on PATH)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    installed = Path(sys.executable).with_name("sketchsearch")  # beside the running interpreter
    exe = str(Path(args.exe).absolute()) if args.exe else str(installed)
    runs = [time_run([exe]) for _ in range(args.runs)]
    print(f"executable        {exe}")
    for stage in ("window shown", "model loaded", "self-test passed"):
        values = [r[stage] for r in runs]
        print(f"{stage:18s}median {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
