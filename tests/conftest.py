"""Shared fixtures: real parts everywhere (SQLite in a temporary folder, FAISS, the shipped network
on the CPU), photos the tests draw themselves, and the research data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.model.untrained import init_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
PKU_ROOT = SHARED_DATA / "pku-sketch"

os.environ.setdefault("SKETCHSEARCH_DEVICE", "cpu")


@pytest.fixture(scope="session")
def pku_root() -> Path:
    if not (PKU_ROOT / "photo").is_dir():
        pytest.skip(f"PKU-Sketch data not found at {PKU_ROOT} (research data lives beside the checkout)")
    return PKU_ROOT


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The model SketchSearch ships."""
    return ROOT / "resources" / "models" / "default"


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory) -> Path:
    """An ImageNet-initialised checkpoint whose attribute head predicts nothing, so that tests of
    the catalogue, import and search mechanics do not depend on whichever trained model ships."""

    folder = tmp_path_factory.mktemp("models") / "imagenet"
    init_checkpoint(folder, "efficientnet_lite0", None, None, command="test fixture")
    return folder


@pytest.fixture(scope="session")
def inference_model(untrained_model_dir):
    from core.model.inference import InferenceModel

    return InferenceModel(untrained_model_dir, device="cpu")


@pytest.fixture(scope="session")
def other_model(tmp_path_factory):
    """A second model (another embedding size, so other vectors): what a model upgrade looks like to
    a gallery imported with the first."""
    from core.model.inference import InferenceModel

    folder = tmp_path_factory.mktemp("models") / "imagenet-256"
    init_checkpoint(folder, "efficientnet_lite0", None, 256, command="test fixture")
    return InferenceModel(folder, device="cpu")


@pytest.fixture
def open_workspace(tmp_path, inference_model):
    """Open (or reopen) a workspace on a data folder; all are closed at the end of the test."""
    from core.workspace import Workspace

    opened = []

    def _open(data_dir: Path | None = None, model=None):
        workspace = Workspace(data_dir or tmp_path / "data", model=model or inference_model)
        opened.append(workspace)
        return workspace

    yield _open
    for workspace in opened:
        workspace.close()


def draw_person(seed: int, size: tuple[int, int] = (96, 192)) -> Image.Image:
    """A distinct little figure on a textured background: unique bytes and content per seed."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    w, h = size
    top, bottom = tuple(int(c) for c in rng.integers(0, 255, 3)), tuple(int(c) for c in rng.integers(0, 255, 3))
    draw.ellipse([w * 0.35, h * 0.03, w * 0.65, h * 0.2], fill=(230, 190, 160))
    draw.rectangle([w * 0.25, h * 0.2, w * 0.75, h * 0.55], fill=top)
    draw.rectangle([w * 0.3, h * 0.55, w * 0.7, h * 0.95], fill=bottom)
    return image


@pytest.fixture
def make_photos(tmp_path):
    """Write ``count`` distinct JPEG photos into a folder and return their paths."""

    def _make(count: int, folder: Path | None = None, start: int = 0) -> list[Path]:
        folder = folder or tmp_path / "gallery"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(start, start + count):
            path = folder / f"person_{i:04d}.jpg"
            draw_person(i).save(path, quality=90)
            paths.append(path)
        return paths

    return _make
