"""The installed models: the bundled one first, then the adapted ones of a data folder, newest
first; hidden, broken and half-written folders are never offered."""

from __future__ import annotations

import json
import shutil

from core.model.registry import installed_models, models_dir


def test_installed_models_are_the_bundled_one_and_whole_adapted_ones(tmp_path, model_dir):
    folder = models_dir(tmp_path)
    for name, created in (("older", "2026-01-01T00:00:00+00:00"), ("newer", "2026-06-01T00:00:00+00:00")):
        shutil.copytree(model_dir, folder / name)
        manifest = json.loads((folder / name / "manifest.json").read_text())
        manifest["provenance"] = {"kind": "adapted", "created": created, "base_model": {"name": "base"}}
        (folder / name / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(model_dir, folder / ".adapted.x.partial")  # being written
    shutil.copytree(model_dir, folder / "no-weights")
    (folder / "no-weights" / "model.safetensors").unlink()
    (folder / "empty").mkdir()
    models = installed_models(tmp_path, bundled=model_dir)
    assert [m.path.name for m in models] == ["default", "newer", "older"]
    assert models[0].bundled and models[0].kind == "bundled"
    assert models[1].base == "base" and models[1].created.startswith("2026-06")


def test_a_data_folder_without_models_offers_the_bundled_one(tmp_path, model_dir):
    assert [m.bundled for m in installed_models(tmp_path, bundled=model_dir)] == [True]
