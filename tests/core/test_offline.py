"""Nothing about the program's use is written outside the data folder: no telemetry of the
libraries it runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def user_environment() -> dict[str, str]:
    """The environment of a user's machine: ONNX Runtime also stays quiet when CI is set, which
    would make these checks pass trivially on a build server."""
    return {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "CI")}


def test_a_search_writes_nothing_under_home(tmp_path, make_photos):
    home = tmp_path / "home"
    home.mkdir()
    photos = make_photos(4)
    env = user_environment()
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "SKETCHSEARCH_DATA": str(tmp_path / "data")}
    for argv in (["import", str(photos[0].parent)], ["search", str(photos[1])]):
        run = subprocess.run(
            [sys.executable, "-m", "app.main", *argv], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


def test_onnx_runtime_would_write_telemetry_without_the_setting(tmp_path):
    """The check above can fail: the library does write its files when the setting is absent."""
    home = tmp_path / "home"
    home.mkdir()
    env = user_environment() | {"HOME": str(home)}
    subprocess.run([sys.executable, "-c", "import onnxruntime"], env=env, check=True)
    written = [p.name for p in home.rglob("*") if p.is_file()]
    if not written:  # a release without this telemetry: nothing to guard against
        import pytest

        pytest.skip("this ONNX Runtime writes no telemetry files")
    assert "onnxruntime.db" in written
