"""The PyInstaller build (dist/sketchsearch/) works on its own: run from another folder, with no
source checkout importable, its headless commands import, search and verify."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FROZEN = ROOT / "dist" / "sketchsearch" / "sketchsearch"

pytestmark = pytest.mark.skipif(
    not FROZEN.is_file(), reason=f"no frozen build at {FROZEN}: build it with `python3 bootstrap.py build`"
)


def run_frozen(*args, cwd: Path, runtime: str = "auto", home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    for name in ("ORT_DISABLE_TELEMETRY", "CI"):  # the bundle must switch telemetry off itself (CI also would)
        env.pop(name, None)
    if home is not None:
        env["HOME"] = str(home)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["SKETCHSEARCH_RUNTIME"] = runtime
    return subprocess.run([str(FROZEN), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_frozen_import_search_verify(tmp_path, make_photos):
    photos = make_photos(5)
    data = tmp_path / "data"
    imported = run_frozen("--data-dir", data, "import", photos[0].parent, "--json", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["added"] == 5

    home = tmp_path / "home"
    home.mkdir()
    found = run_frozen("--data-dir", data, "search", photos[2], "--top", "3", "--json", cwd=tmp_path, home=home)
    assert found.returncode == 0, found.stderr
    assert list(home.rglob("*")) == []  # no telemetry of the runtime under the user's home
    (result,) = json.loads(found.stdout)
    assert [c["rank"] for c in result["candidates"]] == [1, 2, 3]
    # the bundle computes what the source install computes, on the same catalogue
    from core.workspace import Workspace

    with Workspace(data) as workspace:
        (expected,) = workspace.search([photos[2]], top_k=3)
    assert [c["path"] for c in result["candidates"]] == [c.path for c in expected.candidates]
    assert [c["score"] for c in result["candidates"]] == pytest.approx([c.score for c in expected.candidates], abs=1e-5)

    verified = run_frozen("--data-dir", data, "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_frozen_errors_are_one_line(tmp_path):
    missing = run_frozen("--data-dir", tmp_path / "data", "search", tmp_path / "nope.jpg", cwd=tmp_path)
    assert (
        missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path / 'nope.jpg'}: sketch file not found"
    )


def test_cpu_package_carries_no_torch_and_runs_on_onnx_runtime(tmp_path, make_photos, untrained_model_dir):
    """The CPU package leaves torch, the CUDA libraries and training out: its model runs on ONNX
    Runtime, and asking for torch is refused in one line that says why."""
    internal = FROZEN.parent / "_internal"
    assert (internal / "onnxruntime").is_dir()
    for left_out in ("torch", "torchvision", "nvidia", "training"):
        assert not (internal / left_out).exists(), f"{left_out} is in the CPU package"
    photos = make_photos(2)
    data = tmp_path / "data"
    assert run_frozen("--data-dir", data, "import", photos[0].parent, cwd=tmp_path).returncode == 0
    forced = run_frozen("--data-dir", data, "search", photos[0], cwd=tmp_path, runtime="torch")
    assert forced.returncode == 2 and "torch is not installed here" in forced.stderr, forced.stderr
    # a model without an ONNX export cannot run here: the error names the command that exports it
    unexported = run_frozen(
        "--data-dir", tmp_path / "other", "--model", untrained_model_dir, "import", photos[0].parent, cwd=tmp_path
    )
    assert unexported.returncode == 2, unexported.stderr
    assert f"sketchsearch-train export-onnx {untrained_model_dir}" in unexported.stderr


def test_the_cpu_package_imports_a_video_with_its_bundled_detector(tmp_path):
    """The detector ships inside the CPU package (resources/detector, sha256 checked at load) and
    runs there on ONNX Runtime: a generated clip is imported, and a search says where its crop was seen."""
    from tests.conftest import PKU_ROOT
    from tests.video_clips import people_photos, walking_frames, write_clip

    detector = FROZEN.parent / "_internal" / "resources" / "detector"
    assert {p.name for p in detector.iterdir()} >= {"ssdlite_pedestrian.onnx", "ssdlite_pedestrian.json", "LICENSE"}
    clip = write_clip(tmp_path / "walker.mp4", walking_frames(people_photos(1), seconds=4))
    data = tmp_path / "data"
    imported = run_frozen("--data-dir", data, "import", clip, "--json", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    (video,) = json.loads(imported.stdout)["videos"]
    assert video["status"] == "imported" and video["added"] == 1
    found = run_frozen("--data-dir", data, "search", PKU_ROOT / "sketch" / "100.jpg", "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    (candidate,) = json.loads(found.stdout)[0]["candidates"]
    assert candidate["video"]["video_path"] == str(clip) and candidate["video"]["track_id"] == 1
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    refused = run_frozen("--data-dir", data, "import", broken, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().startswith(f"error: {broken}: not a video")
