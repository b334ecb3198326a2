"""P x K identity batches that mix sketches and photos of the same people.

Each batch holds P identities with K images each. A target identity contributes both modalities
(about half its K images sketches, half photos, drawn with replacement when it has fewer), which
is what the cross-modal metric losses need; an optional share of the P identities comes from the
source domain (labelled photos of other people)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from core.model.network import Modality
from training.data import ImageRecord


def _draw(pool: Sequence[int], count: int, rng: np.random.Generator) -> list[int]:
    """``count`` items of ``pool``: every item once before any repeats."""
    if count <= 0:
        return []
    out: list[int] = []
    while len(out) < count:
        out.extend(int(pool[i]) for i in rng.permutation(len(pool)))
    return out[:count]


class IdentityBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices, P identities x K images.

    ``records[i]`` and ``labels[i]`` describe dataset item i; ``source[i]`` marks source-domain
    items. Target identities need both a sketch and a photo (others are left out of batches).
    ``source_share`` in [0, 1]: fraction of the P identities drawn from the source domain
    (1.0: source-only batches, for source pre-training). Batches per epoch: the number of
    identities of the leading domain divided by its identities per batch."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        labels: Sequence[int],
        *,
        p: int,
        k: int,
        source: Sequence[bool] | None = None,
        source_share: float = 0.0,
        seed: int = 0,
        batches: int | None = None,
    ):
        if p < 1 or k < 2:
            raise ValueError("P must be >= 1 and K >= 2 (a sketch and a photo per identity)")
        if not 0.0 <= source_share <= 1.0:
            raise ValueError("source_share must lie in [0, 1]")
        source = list(source) if source is not None else [False] * len(records)
        target: dict[int, dict[Modality, list[int]]] = defaultdict(lambda: {Modality.PHOTO: [], Modality.SKETCH: []})
        src: dict[int, list[int]] = defaultdict(list)
        for index, (record, label, is_source) in enumerate(zip(records, labels, source)):
            if is_source:
                src[label].append(index)
            else:
                target[label][record.modality].append(index)
        self.target = {label: m for label, m in target.items() if m[Modality.PHOTO] and m[Modality.SKETCH]}
        self.source_groups = dict(src)
        self.k = k
        self.seed = seed
        self.epoch = 0
        if source_share >= 1.0 or not self.target:
            self.p_target, self.p_source = 0, p
        else:
            self.p_source = int(round(p * source_share)) if self.source_groups else 0
            if source_share > 0 and self.source_groups:
                self.p_source = min(max(self.p_source, 1), p - 1)
            self.p_target = p - self.p_source
        if self.p_target and self.p_target * max(1, k // 2) < 2:
            raise ValueError(
                f"{self.p_target} target identities x {max(1, k // 2)} sketches per batch: the sketch "
                "encoder's batch norm needs at least 2 sketches (raise P or K)"
            )
        if self.p_target and len(self.target) < self.p_target:
            raise ValueError(f"{len(self.target)} identities with both modalities, fewer than P = {self.p_target}")
        if self.p_source and len(self.source_groups) < self.p_source:
            raise ValueError(f"{len(self.source_groups)} source identities, fewer than {self.p_source} per batch")
        if self.p_target:
            natural = len(self.target) // self.p_target
        else:
            natural = len(self.source_groups) // self.p_source
        self.batches = batches if batches is not None else max(1, natural)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def _target_images(self, label: int, rng: np.random.Generator) -> list[int]:
        groups = self.target[label]
        sketches = max(1, self.k // 2)
        return _draw(groups[Modality.SKETCH], sketches, rng) + _draw(groups[Modality.PHOTO], self.k - sketches, rng)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        target_order: list[int] = []
        source_order: list[int] = []
        target_labels = sorted(self.target)
        source_labels = sorted(self.source_groups)
        for _ in range(self.batches):
            batch: list[int] = []
            if self.p_target:
                if len(target_order) < self.p_target:
                    target_order = [target_labels[i] for i in rng.permutation(len(target_labels))]
                for label in target_order[: self.p_target]:
                    batch.extend(self._target_images(label, rng))
                target_order = target_order[self.p_target :]
            if self.p_source:
                if len(source_order) < self.p_source:
                    source_order = [source_labels[i] for i in rng.permutation(len(source_labels))]
                for label in source_order[: self.p_source]:
                    batch.extend(_draw(self.source_groups[label], self.k, rng))
                source_order = source_order[self.p_source :]
            yield batch
