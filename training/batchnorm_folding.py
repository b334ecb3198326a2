"""Convolutions and the batch norms after them run as one convolution while the batch norms use
their stored statistics (eval mode), with gradients still reaching every original parameter.

A batch norm with fixed statistics is a per-channel affine map, so ``bn(conv(x, W) + c)`` equals
``conv(x, W * s) + (c - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``. The folded weights
are computed from the live parameters on every call (a few thousand values per layer), so
autograd carries the gradient to the convolution's weight and the batch norm's gamma and beta as
before, and an EMA teacher updated in place is folded with its current weights. On the CPU this
skips a pass over every feature map forward and backward: adaptation, which keeps the bundled
model's statistics, takes about a quarter less time per step. The result is the same to float
rounding.

The modules stay as they are (their parameters, buffers and state dicts): only their ``forward``
is replaced inside :func:`folded_batch_norms` and restored on leaving it. A batch norm in train
mode (batch statistics) is never folded; it runs unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def conv_bn_pairs(network: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each 2-D convolution registered immediately before a batch norm over its output channels in
    the same parent: the order in which timm's EfficientNets and torchvision's ResNets run them."""
    pairs = []
    for parent in network.modules():
        children = list(parent.children())
        for conv, norm in zip(children, children[1:], strict=False):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and _after_norm(norm) is not None
                and conv.out_channels == norm.num_features
                and norm.track_running_stats
                and norm.affine
            ):
                pairs.append((conv, norm))
    return pairs


def _after_norm(norm: nn.BatchNorm2d):
    """What the batch norm module does after normalising: nothing (torch's), or timm's
    ``BatchNormAct2d`` dropout and activation; None for a subclass whose forward is unknown."""
    if type(norm) is nn.BatchNorm2d:
        return lambda x: x
    if type(norm).__name__ == "BatchNormAct2d" and hasattr(norm, "drop") and hasattr(norm, "act"):
        return lambda x: norm.act(norm.drop(x))
    return None


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[object, object]:
    conv_forward, norm_forward = conv.forward, norm.forward  # the bound originals
    after = _after_norm(norm)

    def folded_conv(x: torch.Tensor) -> torch.Tensor:
        if norm.training:
            return conv_forward(x)
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        bias = norm.bias - norm.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        return conv._conv_forward(x, conv.weight * scale.view(-1, 1, 1, 1), bias)

    def folded_norm(x: torch.Tensor) -> torch.Tensor:
        return norm_forward(x) if norm.training else after(x)

    return folded_conv, folded_norm


@contextmanager
def folded_batch_norms(*networks: nn.Module) -> Iterator[int]:
    """Within the block, every convolution + batch norm pair of ``networks`` runs folded whenever
    its batch norm is in eval mode; yields the number of pairs."""
    pairs, seen = [], set()
    for network in networks:
        for conv, norm in conv_bn_pairs(network):
            # a module met twice, or already folded by an enclosing block, is left as it is
            if not ({id(conv), id(norm)} & seen) and "forward" not in vars(conv) and "forward" not in vars(norm):
                pairs.append((conv, norm))
                seen |= {id(conv), id(norm)}
    patched: list[nn.Module] = []
    try:
        for conv, norm in pairs:
            conv.forward, norm.forward = _fold(conv, norm)
            patched += [conv, norm]
        yield len(pairs)
    finally:
        for module in patched:
            del module.forward  # back to the class's forward
