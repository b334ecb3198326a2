from __future__ import annotations

from collections import Counter

import pytest

from core.model.network import Modality
from training.data import identities, market1501, pku_sketch
from training.sampler import IdentityBatchSampler


def setup(pku_root, market_root=None):
    records = pku_sketch(pku_root, 1, attributes=False).train
    source = market1501(market_root) if market_root else []
    everything = records + source
    label_of = {k: i for i, k in enumerate(identities(everything))}
    return everything, [label_of[r.key] for r in everything], [False] * len(records) + [True] * len(source)


def test_pk_batches_mix_modalities(pku_root):
    records, labels, _ = setup(pku_root)
    sampler = IdentityBatchSampler(records, labels, p=6, k=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 147 // 6  # 150 ids, 3 without a sketch are left out
    seen = set()
    for batch in batches:
        assert len(batch) == 24
        per_id = Counter(labels[i] for i in batch)
        assert len(per_id) == 6 and set(per_id.values()) == {4}
        for label in per_id:
            modalities = Counter(records[i].modality for i in batch if labels[i] == label)
            assert modalities == {Modality.SKETCH: 2, Modality.PHOTO: 2}
            photos = {i for i in batch if labels[i] == label and records[i].modality is Modality.PHOTO}
            assert len(photos) == 2  # both photos before any repeat
        seen |= set(per_id)
    assert len(seen) == 6 * len(batches)  # no identity twice in one epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_source_share(pku_root, market_root):
    records, labels, source = setup(pku_root, market_root)
    sampler = IdentityBatchSampler(records, labels, p=4, k=2, source=source, source_share=0.25, seed=0, batches=5)
    for batch in sampler:
        assert sum(source[i] for i in batch) == 2  # one source identity x K
        assert sum(not source[i] for i in batch) == 6
    only_source = IdentityBatchSampler(records, labels, p=2, k=3, source=source, source_share=1.0, seed=0)
    assert len(only_source) == 2  # 4 source ids / 2
    for batch in only_source:
        assert all(source[i] for i in batch) and len(batch) == 6


def test_rejects_bad_settings(pku_root):
    records, labels, _ = setup(pku_root)
    with pytest.raises(ValueError):
        IdentityBatchSampler(records, labels, p=4, k=1)
    with pytest.raises(ValueError):
        IdentityBatchSampler(records, labels, p=500, k=2)
    with pytest.raises(ValueError, match="at least 2 sketches"):
        IdentityBatchSampler(records, labels, p=1, k=3)
