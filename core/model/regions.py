"""Which regions of a sketch and a photo agree, read from their stored embeddings.

The encoder pools its feature map over a grid of ``parts`` rows by ``part_columns`` columns and,
without a projection, the embedding is those cells' features side by side, each scaled by the BN
neck dimension by dimension (core.model.network.ModalityEncoder): value ``c * rows * columns +
row * columns + column`` is channel ``c`` of that cell. A cell's slice of the sketch's and of the
photo's embedding can then be compared on its own, with no further run of the network, and the
cells' dot products add up to the search score exactly.

A model that averages each picture with its mirror image (``test_time_flip``) stores in cell
(row, column) the features of that cell and of its mirror cell across the middle: left and right
cannot be told apart, so a region is a cell together with its mirror cell (for two columns, the
whole row)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.model.manifest import Manifest

# where every region figure comes from, said wherever one is shown
REGION_SOURCE = (
    "Region figures: cosine similarity of one region's part of the sketch's and the photo's embeddings "
    "(the model pools its features over a grid of regions and stores them side by side), computed from the "
    "stored photo embedding and the query's embedding by the named model. Each region's features are "
    "computed from pixels around it too (the network sees beyond a cell), so a region's figure is not a "
    "measurement of that part of the picture alone."
)
REGION_AID = (
    "An aid for the reviewer, not evidence: it shows where the model found the sketch and the photo alike, "
    "and says nothing about whether they show the same person."
)
MIRROR_NOTE = (
    "This model averages each picture with its mirror image, so left and right are not told apart: "
    "each region is a whole row of the grid."
)
SCALE = 0.5  # tints saturate at -SCALE and +SCALE (true pairs' regions mostly fall within it)


class RegionsUnavailable(ValueError):
    """The model's embedding is not a grid of regions side by side (said in one line)."""


@dataclass(frozen=True)
class RegionLayout:
    rows: int
    columns: int
    channels: int  # per cell
    mirrored: bool  # each picture averaged with its mirror image: a region is a cell and its mirror cell

    @property
    def regions(self) -> list[tuple[tuple[int, int], ...]]:
        """The cells of each region, top row first."""
        found = []
        for row in range(self.rows):
            for column in range(self.columns):
                mirror = self.columns - 1 - column
                if not self.mirrored:
                    found.append(((row, column),))
                elif column <= mirror:
                    found.append(((row, column),) if column == mirror else ((row, column), (row, mirror)))
        return found


@dataclass(frozen=True)
class RegionSimilarity:
    """Per-region agreement of one sketch and one photo; the grid is the picture's, top row first
    (a photo stretched to the network's input, a sketch cropped to its marks and stretched)."""

    rows: int
    columns: int
    cells: tuple[tuple[float, ...], ...]  # rows x columns: the cosine of the region each cell belongs to
    shares: tuple[tuple[float, ...], ...]  # rows x columns: each cell's part of the score (they add up to it)
    score: float  # the whole embeddings' cosine similarity
    mirrored: bool

    def strongest(self) -> tuple[int, int]:
        """The cell of the region that agrees most (row, column)."""
        values = np.asarray(self.cells)
        row, column = np.unravel_index(int(np.argmax(values)), values.shape)
        return int(row), int(column)


def region_layout(manifest: Manifest, weights_file: Path | None) -> RegionLayout:
    """The manifest's grid, when the embedding is its cells side by side; a learned projection
    after the pool (its weights named ``*.projection.weight``) mixes the cells, and then there is
    no per-region reading."""
    cells = manifest.parts * manifest.part_columns
    if cells < 2:
        raise RegionsUnavailable(f"the model {manifest.name} pools the whole picture into one region")
    if manifest.embedding_dim % cells:
        raise RegionsUnavailable(f"the model {manifest.name}'s embedding is not {cells} regions side by side")
    if weights_file is not None and _has_projection(weights_file):
        raise RegionsUnavailable(f"the model {manifest.name} mixes its regions into one embedding (a projection)")
    return RegionLayout(manifest.parts, manifest.part_columns, manifest.embedding_dim // cells, manifest.test_time_flip)


def _has_projection(weights_file: Path) -> bool:
    from safetensors import safe_open  # the header alone is read

    with safe_open(str(weights_file), framework="numpy") as weights:
        return any(key.endswith("projection.weight") for key in weights.keys())  # noqa: SIM118 - not a dict


def region_similarity(layout: RegionLayout, sketch: np.ndarray, photo: np.ndarray) -> RegionSimilarity:
    """Compare two stored embeddings (unit vectors of the same model) region by region."""
    shape = (layout.channels, layout.rows, layout.columns)
    a = np.asarray(sketch, dtype=np.float64).reshape(shape)
    b = np.asarray(photo, dtype=np.float64).reshape(shape)
    shares = (a * b).sum(axis=0)
    cells = np.zeros((layout.rows, layout.columns))
    for region in layout.regions:
        index = tuple(np.array(region).T)
        norm = np.sqrt((a[:, index[0], index[1]] ** 2).sum() * (b[:, index[0], index[1]] ** 2).sum())
        cells[index] = shares[index].sum() / norm if norm > 0 else 0.0
    return RegionSimilarity(
        rows=layout.rows,
        columns=layout.columns,
        cells=tuple(tuple(float(v) for v in row) for row in cells),
        shares=tuple(tuple(float(v) for v in row) for row in shares),
        score=float(shares.sum()),
        mirrored=layout.mirrored,
    )


def tint(cosine: float) -> tuple[int, int, int]:
    """The colour of a region's figure: blue where the features disagree, white at 0, orange where
    they agree, full at -SCALE and +SCALE (a blue-orange scale reads under colour blindness)."""
    t = max(-1.0, min(1.0, cosine / SCALE))
    end = (230, 120, 20) if t >= 0 else (40, 110, 210)
    return tuple(round(255 + (e - 255) * abs(t)) for e in end)
