"""Region figures: the shipped model's embedding is its pooling grid's cells side by side (checked
against the network itself), the regions' shares add up to the score, a mirrored model's regions
are whole rows, and a model whose embedding mixes its cells has no region reading."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from core.model.manifest import WEIGHTS_FILE, read_manifest
from core.model.modality import Modality
from core.model.regions import RegionLayout, RegionsUnavailable, region_layout, region_similarity
from tests.conftest import draw_person


@pytest.fixture(scope="module")
def shipped(model_dir):
    from core.model.inference import InferenceModel

    return InferenceModel(model_dir, device="cpu")


def test_the_embedding_is_the_pooled_cells_side_by_side(shipped, model_dir):
    """Each cell's slice of the embedding is the pooled feature map of that cell after the BN neck,
    so a region's similarity is read from stored vectors without running the network again."""
    from core.model.preprocess import preprocess

    manifest = shipped.manifest
    layout = region_layout(manifest, model_dir / WEIGHTS_FILE)
    assert (layout.rows, layout.columns) == (manifest.parts, manifest.part_columns)
    encoder = shipped.network.photo
    config = manifest.preprocess[Modality.PHOTO]
    images = torch.from_numpy(np.stack([preprocess(np.asarray(draw_person(i)), config) for i in range(3)]))
    with torch.no_grad():
        pooled = encoder.pool(encoder.backbone(images.contiguous(memory_format=torch.channels_last))).float()
        embedding = encoder(images).embedding.float().numpy()
    neck, grid = encoder.neck, (layout.channels, layout.rows, layout.columns)  # the neck scales value by value
    scale = (neck.weight / torch.sqrt(neck.running_var + neck.eps)).float().reshape(grid)
    shift, bias = neck.running_mean.float().reshape(grid), neck.bias.float().reshape(grid)
    cells = embedding.reshape(-1, *grid)
    for i in range(3):
        expected = ((pooled[i] - shift) * scale + bias).detach().numpy()
        assert np.allclose(cells[i], expected, atol=1e-4)  # cell (row, column) is the grid's cell there


def test_the_regions_shares_add_up_to_the_score_and_mirror_regions_are_rows(shipped, model_dir):
    layout = region_layout(shipped.manifest, model_dir / WEIGHTS_FILE)
    assert layout.mirrored  # the shipped model averages each picture with its mirror image
    photos = shipped.embed_images([np.asarray(draw_person(i)) for i in range(2)], Modality.PHOTO).embeddings
    sketch = shipped.embed_images([np.asarray(draw_person(7).convert("L").convert("RGB"))], Modality.SKETCH)
    query = sketch.embeddings[0]
    for photo in photos:
        found = region_similarity(layout, query, photo)
        assert found.score == pytest.approx(float(query @ photo), abs=1e-5)
        assert sum(map(sum, found.shares)) == pytest.approx(found.score, abs=1e-6)
        a = query.reshape(layout.channels, layout.rows, layout.columns)
        b = photo.reshape(layout.channels, layout.rows, layout.columns)
        for row in range(layout.rows):  # a region is the whole row: both its cells
            x, y = a[:, row, :].ravel(), b[:, row, :].ravel()
            cosine = float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
            assert found.cells[row] == pytest.approx((cosine,) * layout.columns, abs=1e-5)
    assert (
        region_similarity(layout, photos[0], photos[0]).cells == ((pytest.approx(1.0),) * layout.columns,) * layout.rows
    )


def test_without_mirroring_each_cell_is_a_region():
    layout = RegionLayout(rows=2, columns=3, channels=4, mirrored=False)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=24), rng.normal(size=24)
    found = region_similarity(layout, a, b)
    ca, cb = a.reshape(4, 2, 3), b.reshape(4, 2, 3)
    for row in range(2):
        for column in range(3):
            x, y = ca[:, row, column], cb[:, row, column]
            assert found.cells[row][column] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert found.strongest() == np.unravel_index(np.argmax(found.cells), (2, 3))
    mirrored = dataclasses.replace(layout, mirrored=True)
    assert mirrored.regions == [((0, 0), (0, 2)), ((0, 1),), ((1, 0), (1, 2)), ((1, 1),)]


def test_a_model_that_mixes_its_cells_has_no_region_reading(tmp_path, model_dir, untrained_model_dir):
    with pytest.raises(RegionsUnavailable, match="one region"):
        region_layout(read_manifest(untrained_model_dir), untrained_model_dir / WEIGHTS_FILE)
    projected = tmp_path / "projected"
    shutil.copytree(model_dir, projected)
    save_file({"photo.projection.weight": np.zeros((2, 2), np.float32)}, str(projected / WEIGHTS_FILE))
    with pytest.raises(RegionsUnavailable, match="projection"):
        region_layout(read_manifest(projected), projected / WEIGHTS_FILE)
