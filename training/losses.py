"""Training losses, each a small module over a batch.

Conventions: ``labels`` are identity classes (B,), ``modality`` is 0 for photos and 1 for sketches
(B,), attribute ``targets`` are value indices (B x A, in schema order) with -1 for unknown.
Metric losses take the pooled features (before the BN neck), as BNNeck training does.
A loss with nothing to act on in a batch returns a zero that still carries the graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

UNKNOWN = -1


def _zero(like: torch.Tensor) -> torch.Tensor:
    return like.sum() * 0.0


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between rows (B x B, or B x N against ``y``)."""
    y = x if y is None else y
    x, y = x.float(), y.float()
    squared = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None, :] - 2.0 * x @ y.t()
    return squared.clamp_min(eps).sqrt()


def hardest(dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor):
    """Batch-hard mining: per anchor the farthest positive and the closest negative.
    Returns (d_pos, d_neg, valid) where valid marks anchors that have both."""
    valid = positive.any(1) & negative.any(1)
    d_pos = dist.masked_fill(~positive, float("-inf")).amax(1)
    d_neg = dist.masked_fill(~negative, float("inf")).amin(1)
    return d_pos[valid], d_neg[valid], valid


class LabelSmoothingCrossEntropy(nn.Module):
    """Identity cross-entropy with label smoothing: (1 - eps) * NLL + eps * mean_c(-log p_c)."""

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        nll = -log_p.gather(1, labels[:, None]).squeeze(1)
        uniform = -log_p.mean(1)
        return ((1.0 - self.epsilon) * nll + self.epsilon * uniform).mean()


class CrossModalTripletLoss(nn.Module):
    """Batch-hard triplet across modalities: each sketch anchor against photo positives and
    negatives, and each photo anchor against sketches, with a margin."""

    def __init__(self, margin: float = 0.3):
        super().__init__()
        self.margin = margin

    def forward(self, features: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        dist = pairwise_distance(features)
        same = labels[:, None] == labels[None, :]
        cross = modality[:, None] != modality[None, :]
        d_pos, d_neg, _ = hardest(dist, same & cross, ~same & cross)
        if d_pos.numel() == 0:
            return _zero(features)
        return F.relu(d_pos - d_neg + self.margin).mean()


class ModalityAwareTripletLoss(nn.Module):
    """MATHM: modality-aware batch-hard triplet with adaptively weighted terms.

    Terms (anchor a, hardest positive p, hardest negative n):
      * cross:  p and n from the other modality;
      * within: p (not a itself) and n from a's modality;
      * hybrid: p from the other modality, n from a's modality (a cross-modal match must beat a
        same-modality impostor, the typical failure under a modality gap).
    With v_k = d_p - d_n + margin over term k's valid anchors, L_k = mean relu(v_k) and
    g_k = mean sigmoid(v_k); the weights w_k = mean_j(g_j) / max(g_k, 0.1) are detached and the
    loss is sum_k w_k L_k (terms without a valid anchor are left out)."""

    TERMS = ("cross", "within", "hybrid")

    def __init__(self, margin: float = 0.3, floor: float = 0.1):
        super().__init__()
        self.margin = margin
        self.floor = floor

    def violations(
        self, features: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        dist = pairwise_distance(features)
        same = labels[:, None] == labels[None, :]
        same_modality = modality[:, None] == modality[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        masks = {
            "cross": (same & ~same_modality, ~same & ~same_modality),
            "within": (same & same_modality & ~eye, ~same & same_modality),
            "hybrid": (same & ~same_modality, ~same & same_modality),
        }
        out = {}
        for name, (positive, negative) in masks.items():
            d_pos, d_neg, _ = hardest(dist, positive, negative)
            if d_pos.numel():
                out[name] = d_pos - d_neg + self.margin
        return out

    def weights(self, violations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        g = {name: torch.sigmoid(v.detach()).mean() for name, v in violations.items()}
        if not g:
            return {}
        mean_g = torch.stack(list(g.values())).mean()
        return {name: mean_g / g_k.clamp_min(self.floor) for name, g_k in g.items()}

    def forward(self, features: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        violations = self.violations(features, labels, modality)
        if not violations:
            return _zero(features)
        weights = self.weights(violations)
        return sum(weights[name] * F.relu(v).mean() for name, v in violations.items())


class AttributeLoss(nn.Module):
    """Cross-entropy per attribute over the images whose value is known (-1 masked out),
    averaged over the attributes that have at least one known value in the batch."""

    def __init__(self, names: Sequence[str]):
        super().__init__()
        self.names = tuple(names)

    def forward(self, logits: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        losses = []
        for column, name in enumerate(self.names):
            target = targets[:, column]
            known = target != UNKNOWN
            if known.any():
                losses.append(F.cross_entropy(logits[name][known].float(), target[known]))
        if not losses:
            return _zero(next(iter(logits.values())))
        return torch.stack(losses).mean()


class AttributeEntropyLoss(nn.Module):
    """Entropy minimisation of attribute predictions on unlabelled images (``mask``), each
    attribute's entropy divided by log(#values) so all lie in [0, 1]; mean over attributes."""

    def __init__(self, names: Sequence[str]):
        super().__init__()
        self.names = tuple(names)

    def forward(self, logits: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        first = logits[self.names[0]]
        if not mask.any():
            return _zero(first)
        losses = []
        for name in self.names:
            values = logits[name][mask].float()
            log_p = F.log_softmax(values, dim=1)
            entropy = -(log_p.exp() * log_p).sum(1).mean()
            losses.append(entropy / math.log(values.shape[1]))
        return torch.stack(losses).mean()


class AttributeConsistencyLoss(nn.Module):
    """A sketch's attribute prediction should match its identity's photos: for each sketch with
    photos of its identity in the batch, KL(mean photo distribution || sketch distribution), the
    photo side detached by default (photos are the better-informed modality); mean over those
    sketches, then over attributes."""

    def __init__(self, names: Sequence[str], detach_photos: bool = True):
        super().__init__()
        self.names = tuple(names)
        self.detach_photos = detach_photos

    def forward(self, logits: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        first = logits[self.names[0]]
        sketch, photo = modality == 1, modality == 0
        pairs = (labels[:, None] == labels[None, :]) & sketch[:, None] & photo[None, :]
        rows = pairs.any(1)
        if not rows.any():
            return _zero(first)
        weights = pairs[rows].float()
        weights = weights / weights.sum(1, keepdim=True)
        losses = []
        for name in self.names:
            log_p = F.log_softmax(logits[name].float(), dim=1)
            photo_p = log_p.exp().detach() if self.detach_photos else log_p.exp()
            target = weights @ photo_p
            kl = (target * (torch.log(target.clamp_min(1e-8)) - log_p[rows])).sum(1)
            losses.append(kl.mean())
        return torch.stack(losses).mean()


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.strength * grad, None


class GradientReversal(nn.Module):
    """Identity forward; backward multiplies the gradient by -``strength``."""

    def __init__(self, strength: float = 1.0):
        super().__init__()
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.strength)


def dann_strength(progress: float, gamma: float = 10.0) -> float:
    """The usual DANN ramp 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(progress, 0.0), 1.0))) - 1.0


class DomainClassifier(nn.Module):
    """Gradient reversal then a small MLP over 3 domains (source photo / target photo / target
    sketch): the head learns to tell domains apart while the encoders learn to make them
    indistinguishable."""

    def __init__(self, in_dim: int, hidden: int = 256, domains: int = 3, strength: float = 1.0):
        super().__init__()
        self.reverse = GradientReversal(strength)
        self.head = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(hidden, domains)
        )

    @property
    def strength(self) -> float:
        return self.reverse.strength

    @strength.setter
    def strength(self, value: float) -> None:
        self.reverse.strength = value

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.reverse(features.float()))


class DomainAdversarialLoss(nn.Module):
    def __init__(self, classifier: DomainClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.classifier(features), domains)


class SimilarityDistillationLoss(nn.Module):
    """Relational distillation from a frozen teacher: the student's cosine similarity between
    every two images of the batch should equal the teacher's, mean over pairs i != j of
    (cos_student(i, j) - cos_teacher(i, j))^2. Only the pairwise structure is kept, so the
    student's embedding may differ from the teacher's in size and basis."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if len(student) < 2:
            return _zero(student)
        s = F.normalize(student.float(), dim=1)
        t = F.normalize(teacher.detach().float(), dim=1)
        off_diagonal = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
        return (s @ s.t() - t @ t.t())[off_diagonal].pow(2).mean()
