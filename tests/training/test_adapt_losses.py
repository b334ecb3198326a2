"""The AMA losses against explicit per-row loops on random inputs, the EMA teacher's update, and the
collapse guard's figures on constructed embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.ama import EmaTeacher, MutualAlignmentLoss, SelfDistillationLoss
from training.collapse_guard import CollapseGuard, GuardFigures, measure


def unit(rows):
    return [[x / math.sqrt(sum(y * y for y in row)) for x in row] for row in rows]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def softmax(values, temperature):
    top = max(values)
    exp = [math.exp((v - top) / temperature) for v in values]
    return [e / sum(exp) for e in exp]


def soft_ce(target, logits_row, temperature):
    q = softmax(logits_row, temperature)
    return -sum(t * math.log(p) for t, p in zip(target, q))


def loop_distillation(student, teacher, ts, tt):
    s, t = unit(student.tolist()), unit(teacher.tolist())
    losses = []
    for i in range(len(s)):
        target = softmax([dot(t[i], t[j]) for j in range(len(t))], tt)
        losses.append(soft_ce(target, [dot(s[i], t[j]) for j in range(len(t))], ts))
    return sum(losses) / len(losses)


def loop_one_way(moving, leading, temperature, target_temperature):
    losses = []
    for a in range(len(moving)):
        similarities = [dot(moving[a], p) for p in leading]
        nearest = similarities.index(max(similarities))
        target = softmax([dot(leading[nearest], p) for p in leading], target_temperature)
        losses.append(soft_ce(target, similarities, temperature))
    return sum(losses) / len(losses)


def random_rows(seed, n, dim=6):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_distillation_matches_a_loop(seed):
    student, teacher = random_rows(seed, 7), random_rows(seed + 10, 7)
    loss = SelfDistillationLoss(student_temperature=0.2, teacher_temperature=0.07)(student, teacher)
    assert float(loss) == pytest.approx(loop_distillation(student, teacher, 0.2, 0.07), rel=1e-5)


def test_self_distillation_sends_no_gradient_to_the_teacher_and_rewards_agreement():
    teacher = random_rows(3, 8).requires_grad_(True)
    student = random_rows(4, 8).requires_grad_(True)
    loss_fn = SelfDistillationLoss()
    loss_fn(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None and student.grad.abs().sum() > 0
    same = float(loss_fn(teacher.detach(), teacher.detach()))
    collapsed = float(loss_fn(torch.ones(8, 6, dtype=torch.float64), teacher.detach()))
    assert same < collapsed  # a collapsed student pays more than one that keeps the teacher's relations


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutual_alignment_matches_a_loop(seed):
    photos, sketches = random_rows(seed, 6), random_rows(seed + 20, 5)
    loss = MutualAlignmentLoss(temperature=0.2, target_temperature=0.1, reverse_weight=0.3)(photos, sketches)
    p, k = unit(photos.tolist()), unit(sketches.tolist())
    expected = loop_one_way(k, p, 0.2, 0.1) + 0.3 * loop_one_way(p, k, 0.2, 0.1)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_mutual_alignment_is_asymmetric_photos_lead():
    """With the reverse term off, only the sketch side receives a gradient."""
    photos = random_rows(5, 6).requires_grad_(True)
    sketches = random_rows(6, 6).requires_grad_(True)
    MutualAlignmentLoss(reverse_weight=0.0)(photos, sketches).backward()
    assert photos.grad is None and sketches.grad.abs().sum() > 0
    photos.grad = sketches.grad = None
    MutualAlignmentLoss(reverse_weight=0.5)(photos, sketches).backward()
    assert photos.grad.abs().sum() > 0


def test_mutual_alignment_needs_two_of_each():
    photos = random_rows(7, 1).requires_grad_(True)
    loss = MutualAlignmentLoss()(photos, random_rows(8, 4))
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_ema_teacher_follows_the_student():
    student = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    teacher = EmaTeacher(student, momentum=0.9)
    before = teacher.network[0].weight.clone()
    with torch.no_grad():
        student[0].weight.add_(1.0)
        student[1].running_mean.fill_(5.0)
    teacher.update(student)
    expected = 0.9 * before + 0.1 * student[0].weight
    assert torch.allclose(teacher.network[0].weight, expected)
    assert torch.equal(teacher.network[1].running_mean, student[1].running_mean)
    assert not any(p.requires_grad for p in teacher.network.parameters())


def test_guard_figures_on_constructed_embeddings():
    rng = np.random.default_rng(0)
    photos = rng.normal(size=(20, 8)).astype(np.float32)
    photos /= np.linalg.norm(photos, axis=1, keepdims=True)
    figures = measure(photos, photos + 0.01)
    assert figures.agreement == 1.0
    assert figures.spread == pytest.approx(float(photos.std(axis=0).mean()))
    shuffled = measure(photos, np.roll(photos, 1, axis=0))
    assert shuffled.agreement == 0.0
    collapsed = np.tile(photos[:1], (20, 1))
    guard = CollapseGuard(figures)
    assert guard.problem(figures) is None
    assert "spread" in guard.problem(measure(collapsed, collapsed))
    assert "agreement" in guard.problem(shuffled)
    assert not measure(photos * np.nan, photos).finite
    assert "finite" in guard.problem(GuardFigures(0.0, 0.0, finite=False))
