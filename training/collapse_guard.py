"""The collapse guard of unsupervised adaptation: two label-free figures measured on a fixed probe
of gallery photos and their pencil pseudo-sketches after every epoch, against the base model's.

* spread: the mean per-dimension standard deviation of the unit photo embeddings. A collapsed
  embedding maps every photo to (nearly) one point: the spread falls towards 0.
* neighbour agreement: the share of probe photos whose own pseudo-sketch has them as its nearest
  photo. It needs no label (the pseudo-sketch is drawn from that photo) and falls towards chance
  (1 / probe size) when the embedding stops telling people apart.

A run collapses when either figure falls below a set share of the base model's, or an embedding
is not finite; it then stops without writing a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GuardFigures:
    spread: float
    agreement: float
    finite: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def measure(photos: np.ndarray, sketches: np.ndarray) -> GuardFigures:
    """``photos`` and ``sketches`` (N x D, row i of each from the same photo)."""
    finite = bool(np.isfinite(photos).all() and np.isfinite(sketches).all())
    if not finite:
        return GuardFigures(spread=0.0, agreement=0.0, finite=False)
    spread = float(photos.std(axis=0).mean())
    nearest = (sketches @ photos.T).argmax(axis=1)
    agreement = float((nearest == np.arange(len(photos))).mean())
    return GuardFigures(spread=spread, agreement=agreement)


@dataclass(frozen=True)
class CollapseGuard:
    base: GuardFigures
    min_spread_share: float = 0.25  # of the base model's spread
    min_agreement_share: float = 0.5  # of the base model's neighbour agreement

    def problem(self, now: GuardFigures) -> str | None:
        """Why ``now`` counts as a collapse, or None."""
        if not now.finite:
            return "the embeddings are no longer finite numbers"
        if now.spread < self.min_spread_share * self.base.spread:
            return f"the embedding spread fell to {now.spread:.4f} (base model {self.base.spread:.4f})"
        if now.agreement < self.min_agreement_share * self.base.agreement:
            return (
                f"the neighbour agreement fell to {100 * now.agreement:.0f}% "
                f"(base model {100 * self.base.agreement:.0f}%)"
            )
        return None
