"""The benchmarks still run against the current code: the speed benchmarks on tiny inputs (their
figures are not checked here, only that each one completes and prints its ratio), the PKU fusion
diagnosis on the shipped model, whose test figures its manifest records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "module,args",
    [
        ("benchmarks.import_throughput", ["--photos", "12", "--batch", "4", "--size", "160x120"]),
        ("benchmarks.query_latency", ["--photos", "300", "--queries", "3", "--top", "5"]),
        (
            "benchmarks.casework_recording",
            ["--photos", "300", "--records", "3", "--case-searches", "4", "--top", "5"],
        ),
        ("benchmarks.cli_startup", ["--photos", "2", "--runs", "1", "--synthetic", "50"]),
        ("benchmarks.window_first_result", ["--photos", "2", "--runs", "1"]),
        ("benchmarks.live_search", ["--photos", "2000", "--strokes", "2", "--thumbnail-bytes", "100"]),
    ],
)
def test_benchmark_runs_on_a_tiny_input(module, args):
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio" in done.stdout, done.stdout


def test_scale_benchmarks_run_on_a_tiny_input(tmp_path):
    """The index, catalogue and window scale benchmarks complete and print their rows (figures unchecked)."""
    runs = {
        "benchmarks.index_scale": (
            [
                *("--size", "3000", "--queries", "5", "--flat-queries", "2", "--quantisers", "SQ6"),
                *("--base-photos", "40", "--cache", str(tmp_path / "base.npz")),
            ],
            "recall@100",
        ),
        "benchmarks.catalogue_scale": (["--photos", "2000", "--thumbnail-bytes", "100"], "after importing 1000"),
        "benchmarks.window_scale": (["--photos", "2000", "--thumbnail-bytes", "100", "--rebuild"], "usable"),
    }
    for module, (args, expected) in runs.items():
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert expected in done.stdout, done.stdout


def test_the_streamed_index_scale_benchmark_runs_on_a_tiny_input(tmp_path):
    """``--stream`` (the 10 million photo run) draws, indexes and checks the vectors chunk by chunk."""
    args = ["--stream", "--size", "3000", "--queries", "5", "--base-photos", "40", "--cache", str(tmp_path / "b.npz")]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.index_scale", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recall@100" in done.stdout and "open again" in done.stdout, done.stdout


def test_fusion_diagnosis_measures_a_run_as_its_manifest_says(pku_root, model_dir, tmp_path):
    """The shipped model as a one-split run, given twice: alone it scores its recorded test
    figures, fused with itself exactly the same, and the other rows are measured on that split."""
    from benchmarks.pku_fusion import measure
    from core.model.checkpoint import read_manifest

    provenance = read_manifest(model_dir).provenance
    if not provenance.get("metrics"):
        pytest.skip("the shipped model is the untrained ImageNet placeholder: it records no test figures")
    split = int(provenance["split"].rsplit("-", 1)[1])
    runs = []
    for name in ("shipped", "again"):
        (tmp_path / name / f"split-{split}").mkdir(parents=True)
        (tmp_path / name / f"split-{split}" / "model").symlink_to(model_dir, target_is_directory=True)
        runs.append(tmp_path / name)

    rows = measure(runs, pku_root, [split], sizes=[(224, 112)], neighbours=[1])

    recorded = provenance["metrics"]["test"]
    [(r1, mean_ap)] = rows["shipped"]
    assert r1 == pytest.approx(recorded["R1"], abs=1.0) and mean_ap == pytest.approx(recorded["mAP"], abs=1.0)
    assert rows["all runs fused"][0] == pytest.approx(rows["shipped"][0])
    assert set(rows) == {
        "shipped",
        "again",
        "all runs fused",
        "shipped at 224x112",
        "shipped, own size + 224x112 fused",
        "shipped, gallery averaged with 1 nearest",
    }
    assert all(len(values) == 1 and 0 < values[0][1] <= 100 for values in rows.values())
