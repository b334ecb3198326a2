"""ONNX Runtime inference: the bundled model's export computes the same embeddings and attribute
confidences as the torch network on the CPU (to 1e-4), for photos and sketches; the manifest names
the files and their sha256, which the embedding key covers; a tampered file is refused; and the
runtime is chosen as core.model.loading says."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.errors import CheckpointError
from core.model.loading import load_model
from core.model.manifest import read_manifest
from core.model.modality import Modality
from tests.conftest import draw_person


def drawn_sketch(seed: int) -> np.ndarray:
    """A pen drawing of a standing figure on white paper, a little different per seed."""
    rng = np.random.default_rng(seed)
    page = Image.new("RGB", (300, 600), "white")
    draw = ImageDraw.Draw(page)
    x = 150 + int(rng.integers(-20, 20))
    draw.ellipse([x - 30, 40, x + 30, 110], outline="black", width=4)
    draw.line([x, 110, x + int(rng.integers(-15, 15)), 340], fill="black", width=5)
    draw.line([x - 80, 180, x + 80, 170], fill="black", width=4)
    draw.line([x, 340, x - 50, 560], fill="black", width=5)
    draw.line([x, 340, x + 50, 560], fill="black", width=5)
    return np.asarray(page)


def test_bundled_model_on_onnx_runtime_matches_the_torch_network(model_dir):
    from core.model.inference import InferenceModel

    on_torch = load_model(model_dir, "cpu", runtime="torch")
    on_onnx = load_model(model_dir, "cpu")  # what the app and the command line load
    assert isinstance(on_torch, InferenceModel) and (on_torch.runtime, on_onnx.runtime) == ("torch", "onnxruntime")
    assert on_onnx.embedding_key == on_torch.embedding_key
    images = {
        Modality.PHOTO: [np.asarray(draw_person(i, size=(128, 256))) for i in range(3)],
        Modality.SKETCH: [drawn_sketch(i) for i in range(3)],
    }
    for modality, pictures in images.items():
        expected = on_torch.embed_images(pictures, modality)
        got = on_onnx.embed_images(pictures, modality)
        assert np.abs(got.embeddings - expected.embeddings).max() < 1e-4, modality
        assert np.allclose(np.linalg.norm(got.embeddings, axis=1), 1, atol=1e-5)
        assert on_onnx.predicts_attributes  # the bundled head is trained: its outputs are compared too
        assert len(got.attributes) == len(pictures)
        for mine, theirs in zip(got.attributes, expected.attributes):
            assert mine.keys() == theirs.keys() and len(mine) == len(on_onnx.manifest.attribute_schema.attributes)
            for name, attribute in theirs.items():
                assert mine[name].value == attribute.value, (modality, name)
                assert abs(mine[name].confidence - attribute.confidence) < 1e-4, (modality, name)


def test_export_names_its_files_in_the_manifest_and_new_weights_drop_them(tmp_path, untrained_model_dir):
    from core.model.checkpoint import load_checkpoint, save_checkpoint
    from core.model.onnx_export import export_onnx

    folder = tmp_path / "model"
    shutil.copytree(untrained_model_dir, folder)
    before = read_manifest(folder)
    assert before.onnx == {} and load_model(folder, "cpu").runtime == "torch"  # nothing exported: torch

    written = export_onnx(folder)
    after = read_manifest(folder)
    assert {m: folder / f.file for m, f in after.onnx.items()} == written
    assert after.embedding_key != before.embedding_key  # galleries re-index once for the exported graph
    assert after.weights_sha256 == before.weights_sha256
    model = load_model(folder, "cpu")
    assert model.runtime == "onnxruntime" and not model.predicts_attributes
    assert model.embed_images([drawn_sketch(0)], Modality.SKETCH).attributes == [{}]

    network, manifest = load_checkpoint(folder)  # new weights make the export stale: it is removed
    save_checkpoint(network, manifest, folder)
    assert read_manifest(folder).onnx == {} and not any(folder.glob("*.onnx"))
    assert load_model(folder, "cpu").runtime == "torch"


def test_a_changed_onnx_file_is_refused_naming_it(tmp_path, model_dir):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    sketch_file = folder / read_manifest(folder).onnx[Modality.SKETCH].file
    data = bytearray(sketch_file.read_bytes())
    data[-100] ^= 0xFF
    sketch_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sketch\.onnx: sha256 .* does not match the manifest"):
        load_model(folder, "cpu")
    sketch_file.unlink()
    with pytest.raises(CheckpointError, match=r"sketch\.onnx: missing"):
        load_model(folder, "cpu")


def test_unknown_runtime_is_refused(model_dir):
    with pytest.raises(CheckpointError, match="unknown runtime 'tensorflow'"):
        load_model(model_dir, "cpu", runtime="tensorflow")
