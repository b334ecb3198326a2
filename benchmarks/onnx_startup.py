"""ONNX Runtime against torch for inference: a new process that loads the bundled model and embeds
one sketch (cold start, what a CLI search or the window's first search pays), and the warm time
per sketch after that.

    python -m benchmarks.onnx_startup [--runs 5] [--warm 20]

Both load the bundled model (its ONNX export is beside its weights) through core.model.loading, as the
app would, with the runtime forced: torch, then ONNX Runtime (all graph optimisations, as
many intra-op threads as ONNX Runtime chooses)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# load the model on the runtime named, embed one sketch, then time ``warm`` more; prints the warm median
SNIPPET = """
import statistics, sys, time
import numpy as np
from core.model.loading import load_model
model = load_model(sys.argv[1], "cpu", runtime=sys.argv[3])
sketch = np.full((600, 300, 3), 255, np.uint8); sketch[100:500, 140:160] = 0
model.embed_images([sketch], "sketch")
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter(); model.embed_images([sketch], "sketch"); times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def cold_run(runtime: str, folder: Path, warm: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET, str(folder), str(warm), runtime],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-1000:])
    return elapsed, float(done.stdout.strip().splitlines()[-1])


def site_packages_size(package: str) -> float:
    module = __import__(package)
    folder = Path(module.__file__).parent
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm", type=int, default=20, help="sketches embedded after the first, per run")
    args = parser.parse_args()
    from core.common.paths import default_model_dir

    folder = default_model_dir()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    for name in ("torch", "onnxruntime"):
        runs = [cold_run(name, folder, args.warm) for _ in range(args.runs)]
        results[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(
            f"{name:12s} cold (new process, load, 1 sketch + {args.warm} warm) median {results[name][0]:6.2f} s; "
            f"warm per sketch {results[name][1] * 1000:7.1f} ms"
        )
    torch_cold, torch_warm = results["torch"]
    onnx_cold, onnx_warm = results["onnxruntime"]
    print(f"ratio onnxruntime / torch: cold {onnx_cold / torch_cold:.2f}, warm {onnx_warm / torch_warm:.2f}")
    sizes = {name: site_packages_size(name) for name in ("torch", "onnxruntime")}
    print(f"installed size: torch {sizes['torch']:.0f} MB, onnxruntime {sizes['onnxruntime']:.0f} MB")


if __name__ == "__main__":
    main()
