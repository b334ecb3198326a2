"""The benchmarks still run against the current code (on tiny inputs: their figures are not
checked here, only that each one completes and prints its ratio)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module,args", [
    ("benchmarks.import_throughput", ["--photos", "12", "--batch", "4", "--size", "160x120"]),
    ("benchmarks.query_latency", ["--photos", "300", "--queries", "3", "--top", "5"]),
])
def test_benchmark_runs_on_a_tiny_input(module, args):
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio" in done.stdout, done.stdout
