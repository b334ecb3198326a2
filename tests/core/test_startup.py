"""Commands that need no network never import torch: they run in a fresh interpreter, and the probe
reports which heavy modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "timm", "torchvision", "PySide6")
PROBE = (
    "import json, sys\n"
    "from app.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    f"print(json.dumps({{'code': code, 'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))\n"
)


def run_cli(*argv) -> tuple[int, list[str], str]:
    """``sketchsearch ARGV`` in a new interpreter -> (exit code, heavy modules imported, its output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], report["loaded"], done.stdout + done.stderr


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, untrained_model_dir):
    from core.workspace import Workspace
    from tests.conftest import draw_person

    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        draw_person(i).save(folder / f"p{i}_{i}.jpg")
    data = tmp_path_factory.mktemp("data")
    with Workspace(data, untrained_model_dir) as workspace:
        assert workspace.import_paths([folder]).added == 3
    sheet = folder.parent / "sheet.csv"
    sheet.write_text("filename,gender\np0_0.jpg,female\n")
    return ["--data-dir", data, "--model", untrained_model_dir], folder, sheet


@pytest.mark.parametrize(
    "command",
    [
        ["stats", "--json"],
        ["stats"],
        ["verify"],
        ["prune"],
        ["attributes", "set", "1", "gender=male"],
        ["attributes", "import", "{sheet}"],
    ],
)
def test_commands_without_a_network_never_import_torch(gallery, command):
    options, _, sheet = gallery
    code, loaded, output = run_cli(*options, *[str(sheet) if a == "{sheet}" else a for a in command])
    assert code == 0, output
    assert loaded == [], f"{' '.join(command)} imported {loaded}"


def test_search_loads_the_network_when_it_needs_it(gallery):
    options, folder, _ = gallery
    code, loaded, output = run_cli(*options, "search", folder / "p1_1.jpg", "--top", "1")
    assert code == 0 and "rank   1" in output
    assert "torch" in loaded and "PySide6" not in loaded


def test_search_with_the_bundled_model_runs_on_onnx_runtime_without_torch(tmp_path, model_dir):
    """The bundled model names its ONNX export: a search (and the import before it) embeds on ONNX
    Runtime and never imports torch, which is why the desktop package can leave it out."""
    from tests.conftest import draw_person

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        draw_person(i).save(folder / f"p{i}.jpg")
    options = ["--data-dir", tmp_path / "data", "--model", model_dir]
    code, loaded, output = run_cli(*options, "import", folder)
    assert code == 0 and loaded == [], output
    code, loaded, output = run_cli(*options, "search", folder / "p1.jpg", "--top", "1", "--json")
    assert code == 0 and loaded == [], output
    results, _ = json.JSONDecoder().raw_decode(output)  # the search's JSON, then the probe's line
    assert results[0]["candidates"][0]["path"] == str(folder / "p1.jpg")
