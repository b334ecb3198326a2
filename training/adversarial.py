"""Worst-case input perturbations with output consistency (the Knowledge Transfer Catalyst of KTCAA,
AAAI 2026): each training image is nudged, within ``epsilon`` in pixel units, in the direction that
most changes its embedding, and the network is asked to give the perturbed image the embedding it
gave the clean one.

The perturbation is sized in pixels ([0, 1] per channel), not in the network's normalised units, so
it is equally large on every channel, keeps the image a valid picture (no channel leaves [0, 1]) and
keeps a greyscale input grey: a sketch encoder never sees colour at search time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.model.network import Modality
from core.model.preprocess import PreprocessConfig
from training.dataset import MODALITY_INDEX

MODALITY_OF_ROW = {row: modality for modality, row in MODALITY_INDEX.items()}


@dataclass(frozen=True)
class InputScale:
    """Per row of a batch: the normalisation that made it network input, and whether it is grey."""

    mean: torch.Tensor  # N x 3 x 1 x 1
    std: torch.Tensor  # N x 3 x 1 x 1
    grey: torch.Tensor  # N x 1 x 1 x 1, bool

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        return images * self.std + self.mean

    def perturb(self, images: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """Network input ``images`` changed by ``change`` in pixel units."""
        return images + change / self.std


def input_scale(configs: dict[Modality, PreprocessConfig], modality: torch.Tensor) -> InputScale:
    rows = [configs[MODALITY_OF_ROW[int(value)]] for value in modality.tolist()]

    def column(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=modality.device)

    return InputScale(
        mean=column([c.mean for c in rows]).view(-1, 3, 1, 1),
        std=column([c.std for c in rows]).view(-1, 3, 1, 1),
        grey=torch.tensor([c.greyscale for c in rows], device=modality.device).view(-1, 1, 1, 1),
    )


@contextmanager
def running_stats_frozen(network: nn.Module) -> Iterator[None]:
    """Batch norms keep normalising by the batch (train mode) but leave their running statistics,
    which describe the clean images inference sees, as they are."""
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # timm's BatchNormAct2d is a BatchNorm2d
    norms = [m for m in network.modules() if isinstance(m, kinds) and m.track_running_stats]
    for norm in norms:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in norms:
            norm.track_running_stats = True


def divergence(clean: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per row: 1 - cosine similarity of two embeddings (0: the same direction)."""
    return 1 - F.cosine_similarity(clean.float(), other.float(), dim=1)


def _grey_where(grey: torch.Tensor, perturbation: torch.Tensor, combine: Callable) -> torch.Tensor:
    """``perturbation`` with the rows of greyscale inputs made equal across channels by ``combine``."""
    return torch.where(grey, combine(perturbation).expand_as(perturbation), perturbation)


def _bounds(images: torch.Tensor, scale: InputScale, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the lowest and highest change (pixel units) within ``epsilon`` and [0, 1]."""
    pixels = scale.to_pixels(images.detach())
    return (-pixels).clamp(-epsilon, 0), (1 - pixels).clamp(0, epsilon)


def random_start(images: torch.Tensor, scale: InputScale, epsilon: float) -> torch.Tensor:
    """A uniform random change in pixel units (N x 3 x H x W), within ``epsilon`` and [0, 1]."""
    low, high = _bounds(images, scale, epsilon)
    start = _grey_where(scale.grey, torch.empty_like(low).uniform_(-epsilon, epsilon), lambda d: d[:, :1])
    return torch.minimum(torch.maximum(start, low), high)


def uphill_step(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean: torch.Tensor,
    scale: InputScale,
    epsilon: float,
    start: torch.Tensor,
) -> torch.Tensor:
    """One FGSM step of ``epsilon`` from ``start`` (pixel units) towards a larger divergence of the
    embedding from ``clean``, kept within ``epsilon`` and [0, 1]. Only the change is
    differentiated: no parameter receives a gradient."""
    low, high = _bounds(images, scale, epsilon)
    start = start.detach().requires_grad_(True)
    with torch.enable_grad():
        # summed, not averaged: the sign is the same and a float16 gradient underflows less
        uphill = divergence(clean.detach(), embed(scale.perturb(images.detach(), start))).sum()
        (gradient,) = torch.autograd.grad(uphill, start)
    step = _grey_where(scale.grey, gradient, lambda g: g.sum(1, keepdim=True)).sign()
    return torch.minimum(torch.maximum(start.detach() + epsilon * step, low), high)


def worst_case_images(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean: torch.Tensor,
    scale: InputScale,
    epsilon: float,
) -> torch.Tensor:
    """The network input of each image changed, within ``epsilon`` pixel units, the way that most
    changes its embedding (one FGSM step from a random start), as normalised network input."""
    start = random_start(images, scale, epsilon)
    return scale.perturb(images.detach(), uphill_step(embed, images, clean, scale, epsilon, start))


def adversarial_consistency(
    network: nn.Module,
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean: torch.Tensor,
    scale: InputScale,
    epsilon: float,
) -> torch.Tensor:
    """Mean divergence of the worst-case images' embeddings from the clean ones (held fixed): the
    gradient reaches the network through the perturbed branch only. ``embed`` runs ``network``."""
    with running_stats_frozen(network):
        perturbed = embed(worst_case_images(embed, images, clean, scale, epsilon))
    return divergence(clean.detach(), perturbed).mean()
