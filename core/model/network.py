"""The sketch/photo network: two encoders of one architecture (separate weights), a BNNeck
embedding each, and one attribute head over the shared embedding space.

Training adds an identity classifier and a domain classifier on top (``training/``); inference
uses the embedding (L2-normalised at search time) and the attribute head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.model.attributes import AttributeSchema
from core.model.backbones import backbone_spec
from core.model.modality import Modality  # noqa: F401 - re-exported: training imports it from here


@dataclass
class EncoderOutput:
    feature: torch.Tensor  # pooled feature before the BN neck (what metric losses use)
    embedding: torch.Tensor  # after the BN neck (what identity/attribute heads and search use)


class ModalityEncoder(nn.Module):
    """Backbone (cut at ``feature_stride``) -> average pool (whole
    image, or a grid of ``parts`` horizontal stripes by ``part_columns`` columns, cells side by
    side) -> optional linear projection -> BatchNorm neck.

    Cells (part pooling, as in PCB) keep where on the body or face a feature was seen: a red top and
    blue trousers are then not the same as a blue top and red trousers. Aligned faces keep their
    layout best on a fine grid of stride-16 features: eyes, nose and mouth fall in the same cells."""

    def __init__(
        self,
        backbone: str,
        embedding_dim: int | None = None,
        parts: int = 1,
        part_columns: int = 1,
        feature_stride: int = 32,
    ):
        super().__init__()
        if parts < 1 or part_columns < 1:
            raise ValueError(f"parts and part_columns must be at least 1, got {parts} and {part_columns}")
        spec = backbone_spec(backbone)
        pooled = spec.feature_dim(feature_stride) * parts * part_columns
        self.backbone = spec.build(feature_stride)
        self.pool = nn.AdaptiveAvgPool2d((parts, part_columns))
        dim = embedding_dim or pooled
        self.projection = nn.Identity() if dim == pooled else nn.Linear(pooled, dim, bias=False)
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)  # BNNeck: no shift, so the embedding stays centred
        self.embedding_dim = dim

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        # Channels-last (NHWC) convolutions run about twice as fast as NCHW on the CPU (oneDNN) and
        # use the tensor cores on CUDA; the result is the same to float rounding.
        images = images.contiguous(memory_format=torch.channels_last)
        feature = self.projection(self.pool(self.backbone(images)).flatten(1))
        return EncoderOutput(feature=feature, embedding=self.neck(feature))


class AttributeHead(nn.Module):
    """One linear classifier per attribute over the shared embedding: photos and sketches are
    described in the same label space, which is what lets attributes guide the alignment."""

    def __init__(self, embedding_dim: int, schema: AttributeSchema):
        super().__init__()
        self.schema = schema
        self.classifiers = nn.ModuleDict({a.name: nn.Linear(embedding_dim, len(a.values)) for a in schema.attributes})

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: classifier(embedding) for name, classifier in self.classifiers.items()}


class SketchPhotoNet(nn.Module):
    """``shared_backbone``: the two encoders' convolutions share weights and only their
    normalisation (batch norms and BN neck) stays per modality. With a few hundred sketches to learn
    from, the sketch encoder then learns its filters from the photos too."""

    def __init__(
        self,
        backbone: str,
        schema: AttributeSchema,
        embedding_dim: int | None = None,
        shared_backbone: bool = False,
        parts: int = 1,
        part_columns: int = 1,
        feature_stride: int = 32,
    ):
        super().__init__()
        self.backbone_name = backbone
        self.shared_backbone = shared_backbone
        self.parts, self.part_columns, self.feature_stride = parts, part_columns, feature_stride
        self.photo = ModalityEncoder(backbone, embedding_dim, parts, part_columns, feature_stride)
        self.sketch = ModalityEncoder(backbone, embedding_dim, parts, part_columns, feature_stride)
        if shared_backbone:
            tie_weights(self.sketch.backbone, self.photo.backbone)
            tie_weights(self.sketch.projection, self.photo.projection)
        self.embedding_dim = self.photo.embedding_dim
        self.attributes = AttributeHead(self.embedding_dim, schema)
        # Convolution weights channels-last like the encoders' input (training needs both for the
        # full speed-up). In place, so tied weights stay tied; loading weights keeps the layout.
        self.to(memory_format=torch.channels_last)

    def encoder(self, modality: Modality | str) -> ModalityEncoder:
        return self.photo if Modality(modality) is Modality.PHOTO else self.sketch

    def forward(self, images: torch.Tensor, modality: Modality | str) -> EncoderOutput:
        return self.encoder(modality)(images)


def tie_weights(follower: nn.Module, leader: nn.Module) -> None:
    """Make every convolution and linear layer of ``follower`` use ``leader``'s parameters (the two
    modules have the same architecture); normalisation layers keep their own."""
    for (name, mine), (_, theirs) in zip(follower.named_modules(), leader.named_modules(), strict=True):
        if isinstance(mine, (nn.Conv2d, nn.Linear)):
            if type(mine) is not type(theirs) or mine.weight.shape != theirs.weight.shape:
                raise ValueError(f"cannot tie {name}: the modules differ")
            mine.weight = theirs.weight
            if mine.bias is not None:
                mine.bias = theirs.bias


def load_pretrained_backbones(network: SketchPhotoNet, weights: Path | None = None) -> None:
    """Initialise both encoders' backbones from the backbone's pretrained (ImageNet) weights."""
    spec = backbone_spec(network.backbone_name)
    for encoder in (network.photo, network.sketch):
        spec.load_pretrained(encoder.backbone, weights)
