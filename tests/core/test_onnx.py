"""ONNX Runtime inference: the bundled model's export computes the same embeddings and attribute
confidences as the torch network on the CPU (to 1e-4), for photos and sketches; the manifest names
the files and their sha256, which the embedding key covers; a tampered file is refused; and the
runtime is chosen as core.model.loading says."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.common.errors import CheckpointError
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


def _manifest_names_onnx_file_as_it_is_now(folder, modality: Modality) -> None:
    """What someone who changed an ONNX file does next, so that the file loads: the manifest's
    sha256 of it rewritten."""
    import json

    from core.model.manifest import MANIFEST_FILE, file_sha256

    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    named = manifest["onnx"][modality.value]
    named["sha256"] = file_sha256(folder / named["file"])
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def test_an_onnx_file_with_external_data_is_refused_naming_it(tmp_path, model_dir, capsys):
    """Weights in a file beside the graph (``sketch.data``) are covered by no hash: refused."""
    import onnx

    from core.cli.commands import main

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    sketch_file = folder / read_manifest(folder).onnx[Modality.SKETCH].file
    graph = onnx.load(sketch_file)
    onnx.save_model(graph, sketch_file, save_as_external_data=True, location="sketch.data", size_threshold=1024)
    assert (folder / "sketch.data").is_file()
    _manifest_names_onnx_file_as_it_is_now(folder, Modality.SKETCH)
    with pytest.raises(CheckpointError) as refused:
        load_model(folder, "cpu")
    message = str(refused.value)
    assert message.startswith(f"{sketch_file}: its weights are stored outside it (external data of ")
    assert "tensor(s), in 'sketch.data'), which the manifest's sha256 does not cover" in message
    assert "\n" not in message
    code = main(["--data-dir", str(tmp_path / "data"), "--model", str(folder), "import", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {message}\n"


def _scrambled(folder, modality: Modality) -> None:
    """Every floating-point weight of ``modality``'s ONNX file set to NaN, the manifest updated."""
    import onnx
    from onnx import numpy_helper

    path = folder / read_manifest(folder).onnx[modality].file
    graph = onnx.load(path)
    for tensor in graph.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype.kind == "f" and weights.size > 1:
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(weights, np.nan), tensor.name))
    onnx.save_model(graph, path)
    _manifest_names_onnx_file_as_it_is_now(folder, modality)


def test_non_finite_embeddings_fail_the_search_in_one_line_and_nothing_is_recorded(
    tmp_path, model_dir, capsys, make_photos
):
    import sqlite3

    from core.cli.commands import main

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _scrambled(folder, Modality.SKETCH)  # photos embed as before; every sketch embeds to NaN
    photos = make_photos(3)
    data = ["--data-dir", str(tmp_path / "data"), "--model", str(folder)]
    assert main([*data, "import", str(photos[0].parent)]) == 0
    capsys.readouterr()
    code = main([*data, "search", str(photos[0]), "--json"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == (
        f"error: {folder}: the model produced non-finite embeddings (NaN or infinity) for 1 of 1 sketch "
        "image(s); its weights are damaged, so nothing was searched or stored\n"
    )
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM searches").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM audit_log WHERE kind LIKE 'search%'").fetchone() == (0,)

    _scrambled(folder, Modality.PHOTO)  # and an import stores no embedding of NaN
    code = main(["--data-dir", str(tmp_path / "other"), "--model", str(folder), "import", str(photos[0].parent)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "non-finite embeddings" in err and "3 of 3 photo image(s)" in err
    with sqlite3.connect(tmp_path / "other" / "catalogue.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM photos").fetchone() == (0,)
