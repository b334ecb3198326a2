"""The bundled model exported to ONNX computes the same embeddings and attribute confidences as the
torch network on the CPU (to 1e-4), for photos and sketches."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.model.modality import Modality
from tests.conftest import draw_person

ort = pytest.importorskip("onnxruntime", reason="the 'onnx' extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnx", reason="the 'onnx' extra (onnx, onnxruntime) is not installed")


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


def test_onnx_export_matches_the_torch_network(tmp_path, model_dir):
    from core.model.inference import InferenceModel
    from core.model.onnx_export import EMBEDDING_OUTPUT, IMAGE_INPUT, attribute_output, export_onnx

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    written = export_onnx(folder)
    assert set(written) == set(Modality) and all(p.parent == folder and p.is_file() for p in written.values())

    model = InferenceModel(folder, device="cpu")
    schema = model.manifest.attribute_schema
    images = {
        Modality.PHOTO: [np.asarray(draw_person(i, size=(128, 256))) for i in range(3)],
        Modality.SKETCH: [drawn_sketch(i) for i in range(3)],
    }
    for modality, pictures in images.items():
        batch = np.stack([model.preprocess(p, modality) for p in pictures])
        expected = model.embed_preprocessed(batch, modality)
        session = ort.InferenceSession(str(written[modality]), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(None, {IMAGE_INPUT: batch})))
        assert np.abs(outputs[EMBEDDING_OUTPUT] - expected.embeddings).max() < 1e-4, modality
        assert model.predicts_attributes  # the bundled model's head is trained: its outputs are compared too
        for i, predicted in enumerate(expected.attributes):
            for name, attribute in predicted.items():
                logits = outputs[attribute_output(name)][i].astype(np.float64)
                probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
                assert schema.spec(name).values[int(probabilities.argmax())] == attribute.value
                assert abs(probabilities.max() - attribute.confidence) < 1e-4, (modality, name)
