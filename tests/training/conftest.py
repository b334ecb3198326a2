"""Fixtures for the training tests: the research data sets live beside the repository, never in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_test_helpers import MARKET_IDS, write_image

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO / "../shared/data").resolve()


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (research data is kept beside the repo in ../shared/data)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests, restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cufs_root() -> Path:
    return _need(DATA / "cufs", "CUFS")


@pytest.fixture(scope="session")
def market_mat() -> Path:
    return _need(DATA / "market1501-attributes" / "market_attribute.mat", "Market-1501 attributes")


@pytest.fixture
def market_root(tmp_path: Path, market_mat: Path) -> Path:
    """A tiny folder in the Market-1501 layout: generated images named with real training ids
    (3 per id, two cameras), junk/distractor files, and a copy of the real attribute file."""
    root = tmp_path / "market"
    folder = root / "bounding_box_train"
    seed = 0
    for pid in MARKET_IDS:
        for cam, frame in ((1, 451), (2, 1201), (2, 1301)):
            write_image(folder / f"{pid}_c{cam}s1_{frame:06d}_01.jpg", seed)
            seed += 1
    write_image(folder / "0000_c1s1_000001_00.jpg", 99)
    write_image(folder / "-1_c1s1_000002_00.jpg", 98)
    (root / "market_attribute.mat").write_bytes(market_mat.read_bytes())
    return root
