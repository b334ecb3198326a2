"""Wall time of command-line calls, each in a new process (import, open, answer, exit), as a script
or a person calling ``sketchsearch`` sees it.

    python -m benchmarks.cli_startup [--source DIR] [--runs 5] [--photos 20] [--synthetic 100000]

``--source`` times another checkout of SketchSearch (e.g. an older commit unpacked with
``git archive``) on a gallery of its own. ``--synthetic N`` adds N catalogued photos with random unit
embeddings and predicted attributes (benchmarks.query_latency.populate) to the imported ones, so
that the commands open a catalogue and an index of that size. Targets (issue #26): ``stats`` under
1 s; ``search`` of one sketch under 2 s end to end at 100k photos."""

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


def sketchsearch(source: Path, *argv: str | Path, runtime: str = "auto") -> float:
    """Run ``sketchsearch ARGV`` from ``source`` in a fresh interpreter; seconds from start to exit."""
    env = {**os.environ, "PYTHONPATH": str(source), "SKETCHSEARCH_DEVICE": "cpu", "SKETCHSEARCH_RUNTIME": runtime}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, argv)], cwd=source, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sketchsearch {' '.join(map(str, argv))} failed: {done.stderr.strip()[-500:]}")
    return elapsed


def add_synthetic(data_dir: Path, count: int) -> None:
    """``count`` more photos in the catalogue and the index, under the bundled model's key."""
    import numpy as np

    from benchmarks.query_latency import populate
    from core.workspace import Workspace

    with Workspace(data_dir, create=False) as workspace:
        populate(workspace, count, np.random.default_rng(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout to time (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=20, help="photos imported into the gallery the commands open")
    parser.add_argument("--synthetic", type=int, default=0, help="synthetic photos added to the gallery")
    parser.add_argument("--compare-torch", action="store_true", help="also time the search with inference on torch")
    args = parser.parse_args()
    source = args.source.resolve()
    sys.path.insert(0, str(ROOT))
    from app.self_test import write_figures

    with tempfile.TemporaryDirectory(prefix="sketchsearch-cli-startup-") as tmp:
        gallery = write_figures(Path(tmp) / "gallery", args.photos)
        data = ["--data-dir", Path(tmp) / "data"]
        sketchsearch(source, *data, "import", gallery[0].parent)
        if args.synthetic:
            add_synthetic(Path(tmp) / "data", args.synthetic)
        commands = {
            "stats --json": ["stats", "--json"],
            "verify": ["verify"],
            "attributes set": ["attributes", "set", "1", "gender=male"],
            "search (1 sketch)": ["search", gallery[0], "--top", "10"],
        }
        print(f"source            {source}")
        total = args.photos + args.synthetic
        print(f"gallery           {total} photos ({args.synthetic} synthetic); {args.runs} runs, a new process each")
        print(f"load average      {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        medians = {}
        if args.compare_torch:
            commands["search on torch"] = commands["search (1 sketch)"]
        for name, argv in commands.items():
            runtime = "torch" if name == "search on torch" else "auto"
            times = [sketchsearch(source, *data, *argv, runtime=runtime) for _ in range(args.runs)]
            median = statistics.median(times)
            line = f"{name:18s}median {median:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})"
            if name in TARGETS:
                line += f"  target {TARGETS[name]:.1f} s, ratio {median / TARGETS[name]:.2f}"
            medians[name] = median
            print(line)
        if args.compare_torch:
            print(f"search: ONNX Runtime / torch ratio {medians['search (1 sketch)'] / medians['search on torch']:.2f}")


if __name__ == "__main__":
    main()
