"""Start a network from another checkpoint (``fit --init``): every tensor of the checkpoint that
fits the new network by name and shape is copied in, the rest keep their initialisation.

A model of another grid or stride, or one whose encoders did not share weights, can then start a
run with this run's architecture: its backbone and embedding layers carry over where they match.
An attribute head is carried over only when it was trained (an untrained one is no better than a
fresh one), and the training-only classifiers are never in a checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.common.errors import CheckpointError
from core.model.checkpoint import Manifest, load_checkpoint
from core.model.network import SketchPhotoNet
from training.config import ConfigError

log = logging.getLogger(__name__)
ATTRIBUTE_HEAD = "attributes."


@dataclass
class WarmStart:
    manifest: Manifest  # the checkpoint's
    loaded: list[str] = field(default_factory=list)  # the network's keys given the checkpoint's tensor
    kept: list[str] = field(default_factory=list)  # the network's keys left as initialised (tied copies aside)


def _followers(network: SketchPhotoNet) -> set[str]:
    """Keys of tied tensors after the first that names each (the sketch encoder's copy of a shared
    convolution): the photo encoder's tensor is the one loaded into a shared parameter."""
    first: dict[int, str] = {}
    followers = set()
    for key, tensor in network.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            followers.add(key)
        else:
            first[id(tensor)] = key
    return followers


def warm_start(network: SketchPhotoNet, folder: Path) -> WarmStart:
    """Copy the matching tensors of the checkpoint at ``folder`` into ``network`` (in place)."""
    source, manifest = load_checkpoint(Path(folder))
    if manifest.attribute_schema != network.attributes.schema:
        raise ConfigError(f"{folder}: attribute schema differs from the training schema")
    theirs = source.state_dict()
    ours = network.state_dict()
    followers = _followers(network)
    skip = set(followers)
    if not manifest.attribute_head_trained:
        skip |= {k for k in ours if k.startswith(ATTRIBUTE_HEAD)}
    matched = {
        key: tensor
        for key, tensor in theirs.items()
        if key in ours and key not in skip and tensor.shape == ours[key].shape
    }
    backbone = [k for k in matched if ".backbone." in k]
    if not backbone:
        raise CheckpointError(
            f"{folder}: none of its backbone weights fit this run's network "
            f"({manifest.backbone} there, {network.backbone_name} here)"
        )
    network.load_state_dict(matched, strict=False)
    kept = [k for k in ours if k not in matched and k not in followers]
    result = WarmStart(manifest, loaded=list(matched), kept=kept)
    log.info(
        "started from %s (%s): %d tensors loaded, %d kept as initialised%s",
        folder,
        manifest.name,
        len(result.loaded),
        len(kept),
        f" (e.g. {', '.join(kept[:3])})" if kept else "",
    )
    return result
