"""OSNet x0.25 (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019)
in plain torch, with the module layout of torchreid's ``osnet_x0_25`` so that its published
weights load by name, and a loader for those weights stored as safetensors (never a pickle).

Layout: a 7x7 stem and max pool, three stages of two omni-scale residual blocks (channels
[16, 64, 96, 128]; the first two stages end with a 1x1 convolution and 2x2 average pooling), a
1x1 convolution, global average pooling and a 512-value fully connected layer (linear, batch norm,
ReLU): the re-ID feature. A block runs four streams of 1 to 4 Lite 3x3 layers (a 1x1 convolution
then a 3x3 depthwise one) and sums them through one shared channel gate (the unified aggregation
gate), so each channel picks its own mix of receptive field sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.common.errors import CheckpointError

CHANNELS = (16, 64, 96, 128)  # stem, then the three stages (x0.25 of OSNet's 64, 256, 384, 512)
FEATURE_DIM = 512


class ConvLayer(nn.Module):
    """Convolution, batch norm, ReLU (torchreid's ``ConvLayer``/``Conv1x1``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv1x1Linear(nn.Module):
    """1x1 convolution and batch norm, no activation (a block's output and shortcut projections)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """Lite 3x3: a linear 1x1 convolution, then a 3x3 depthwise one, batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False, groups=out_channels)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: per-channel weights in (0, 1) from the stream's pooled
    activations through a bottleneck (reduction 16); one gate shared by all four streams."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * weights


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck: 1x1 reduce by 4, four streams of 1..4 Lite 3x3 layers
    (receptive fields 3, 5, 7, 9) summed through the shared gate, 1x1 expand, plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_reduction: int = 4):
        super().__init__()
        mid = out_channels // bottleneck_reduction
        self.conv1 = ConvLayer(in_channels, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(2)])
        self.conv2c = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(3)])
        self.conv2d = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels)
        self.downsample = Conv1x1Linear(in_channels, out_channels) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        streams = (self.conv2a, self.conv2b, self.conv2c, self.conv2d)
        mixed = sum(self.gate(stream(reduced)) for stream in streams)
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.conv3(mixed) + shortcut)


def _stage(in_channels: int, out_channels: int, blocks: int, reduce: bool) -> nn.Sequential:
    layers: list[nn.Module] = [OSBlock(in_channels, out_channels)]
    layers += [OSBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    if reduce:  # transition: 1x1 convolution then halve the resolution
        layers.append(nn.Sequential(ConvLayer(out_channels, out_channels), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """OSNet x0.25 up to its 512-value re-ID feature (the identity classifier is kept apart: it
    belongs to the people the weights were trained on, not to the network)."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, feature_dim: int = FEATURE_DIM, blocks: int = 2):
        super().__init__()
        self.conv1 = ConvLayer(3, channels[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(channels[0], channels[1], blocks, reduce=True)
        self.conv3 = _stage(channels[1], channels[2], blocks, reduce=True)
        self.conv4 = _stage(channels[2], channels[3], blocks, reduce=False)
        self.conv5 = ConvLayer(channels[3], channels[3])
        self.fc = nn.Sequential(nn.Linear(channels[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised RGB images (B x 3 x 256 x 128 as trained) -> B x 512 features."""
        return self.fc(F.adaptive_avg_pool2d(self.feature_maps(images), 1).flatten(1))


CLASSIFIER_PREFIX = "classifier."


@dataclass
class OSNetWeights:
    network: OSNet  # in eval mode
    classifier: nn.Linear | None  # the training people's identity classifier, when the file has one
    path: Path


def map_osnet_state(
    stored: dict[str, torch.Tensor], network: OSNet
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a torchreid state dict into the network's tensors and the classifier's, checking that
    every stored tensor has a place of the same shape and every network tensor a stored value."""
    expected = network.state_dict()
    mapped, classifier = {}, {}
    for key, tensor in stored.items():
        if key.startswith(CLASSIFIER_PREFIX):
            classifier[key[len(CLASSIFIER_PREFIX) :]] = tensor
            continue
        if key not in expected:
            raise CheckpointError(f"OSNet weights: unexpected tensor {key} (not OSNet x0.25's layout)")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"OSNet weights: {key} has shape {tuple(tensor.shape)}, the network needs {tuple(expected[key].shape)}"
            )
        mapped[key] = tensor.to(expected[key].dtype)
    missing = [key for key in expected if key not in mapped]
    if missing:
        raise CheckpointError(f"OSNet weights: {len(missing)} tensors missing ({', '.join(missing[:3])} ...)")
    if classifier and set(classifier) != {"weight", "bias"}:
        raise CheckpointError(f"OSNet weights: unexpected classifier tensors {sorted(classifier)}")
    return mapped, classifier


def load_osnet(path: Path) -> OSNetWeights:
    """OSNet x0.25 from torchreid-named weights in a ``.safetensors`` file."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: OSNet weights must be a .safetensors file (a pickle is never loaded)")
    if not path.is_file():
        raise CheckpointError(f"{path}: OSNet weights file not found")
    try:
        stored = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a broken file
        raise CheckpointError(f"{path}: unreadable ({exc})") from exc
    network = OSNet()
    try:
        state, classifier_state = map_osnet_state(stored, network)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    network.load_state_dict(state, strict=True)
    classifier = None
    if classifier_state:
        classes, dim = classifier_state["weight"].shape
        classifier = nn.Linear(dim, classes)
        classifier.load_state_dict(classifier_state)
    return OSNetWeights(network.eval(), classifier, path)
