"""The two parts of AMA (Asymmetric Mutual Alignment, AAAI 2024) as losses over unlabelled batches,
and the teacher they need.

* :class:`SelfDistillationLoss`: a teacher (an exponential moving average of the network, see
  :class:`EmaTeacher`) embeds one augmented view of each image; the student embeds another. The
  teacher's sharpened similarity distribution of image i over the batch's teacher embeddings is
  the soft target of the student's distribution for image i. Collapsed embeddings make every
  distribution uniform, which this loss penalises (the target peaks on image i itself).
* :class:`MutualAlignmentLoss`: each sketch's relation to the photos (softmax of similarities)
  is pulled towards the photo-photo relation of its nearest photo (intra-modality neighbours of an
  inter-modality neighbour); the photo side is the target and is detached (photos, the better
  trained modality, lead). The reverse direction (photos pulled towards their nearest sketch's
  sketch-sketch relation) is weighted by ``reverse_weight`` < 1: the asymmetry.

Inputs are embeddings (B x D); both losses normalise them, as search does.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def soft_cross_entropy(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean_i -sum_j target_ij log softmax(logits)_ij."""
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


class SelfDistillationLoss(nn.Module):
    """``student`` (B x D, view a) against ``teacher`` (B x D, view b, no gradient): target
    ``softmax(t_i . t_j / teacher_temperature)``, prediction ``softmax(s_i . t_j / student_temperature)``,
    soft cross-entropy averaged over i."""

    def __init__(self, student_temperature: float = 0.1, teacher_temperature: float = 0.05):
        super().__init__()
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s = F.normalize(student.float(), dim=1)
        t = F.normalize(teacher.detach().float(), dim=1)
        target = F.softmax(t @ t.t() / self.teacher_temperature, dim=1)
        return soft_cross_entropy(target, s @ t.t() / self.student_temperature)


class MutualAlignmentLoss(nn.Module):
    """Asymmetric cross-modality mutual alignment over ``photos`` (P x D) and ``sketches`` (S x D).

    Sketch -> photo term: for sketch a, n(a) = its most similar photo; target
    ``softmax(p_n(a) . p_j / target_temperature)`` over photos j (detached), prediction
    ``softmax(k_a . p_j / temperature)`` with the photos detached: only the sketch side moves.
    Photo -> sketch term, the same with the modalities swapped, times ``reverse_weight``."""

    def __init__(self, temperature: float = 0.1, target_temperature: float = 0.05, reverse_weight: float = 0.2):
        super().__init__()
        self.temperature = temperature
        self.target_temperature = target_temperature
        self.reverse_weight = reverse_weight

    def one_way(self, moving: torch.Tensor, leading: torch.Tensor) -> torch.Tensor:
        """``moving`` aligned to the neighbour relations of ``leading`` (detached)."""
        leading = leading.detach()
        relation = moving @ leading.t()
        nearest = relation.detach().argmax(1)
        target = F.softmax(leading[nearest] @ leading.t() / self.target_temperature, dim=1)
        return soft_cross_entropy(target, relation / self.temperature)

    def forward(self, photos: torch.Tensor, sketches: torch.Tensor) -> torch.Tensor:
        if len(photos) < 2 or len(sketches) < 2:
            return (photos.sum() + sketches.sum()) * 0.0
        p = F.normalize(photos.float(), dim=1)
        k = F.normalize(sketches.float(), dim=1)
        loss = self.one_way(k, p)
        if self.reverse_weight:
            loss = loss + self.reverse_weight * self.one_way(p, k)
        return loss


class EmaTeacher:
    """A frozen copy of the network whose weights follow the student's as an exponential moving
    average: ``teacher = momentum * teacher + (1 - momentum) * student`` after each step (buffers,
    e.g. batch-norm statistics, copied)."""

    def __init__(self, student: nn.Module, momentum: float = 0.999):
        self.momentum = momentum
        self.network = copy.deepcopy(student).eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One multiply and one add over all parameters at once (``torch._foreach_*``: the same
        arithmetic as a loop over them, in a few calls instead of hundreds)."""
        mine = dict(self.network.named_parameters())
        parameters = list(student.named_parameters())
        teacher = [mine[name] for name, _ in parameters]
        torch._foreach_mul_(teacher, self.momentum)
        torch._foreach_add_(teacher, [p.detach() for _, p in parameters], alpha=1.0 - self.momentum)
        buffers = dict(self.network.named_buffers())
        pairs = [(buffers[name], buffer) for name, buffer in student.named_buffers()]
        if pairs:
            torch._foreach_copy_([b for b, _ in pairs], [b for _, b in pairs])
