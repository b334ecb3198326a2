"""Each loss against an explicit per-anchor / per-sample loop on random inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import (
    AttributeConsistencyLoss,
    AttributeEntropyLoss,
    AttributeLoss,
    CrossModalTripletLoss,
    DomainAdversarialLoss,
    DomainClassifier,
    LabelSmoothingCrossEntropy,
    ModalityAwareTripletLoss,
    SimilarityDistillationLoss,
    dann_strength,
)

MARGIN = 0.3


def batch(seed: int, ids: int = 4, per_id: int = 4, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(ids * per_id, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(ids).repeat_interleave(per_id)
    modality = torch.tensor([i % 2 for i in range(per_id)] * ids)
    return features, labels, modality


def dist(a, b):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def loop_hard(features, labels, modality, pos_rule, neg_rule):
    """Per-anchor violations d(a, hardest p) - d(a, hardest n) + margin, by explicit loops."""
    n = len(labels)
    out = []
    for a in range(n):
        pos = [dist(features[a], features[j]) for j in range(n) if pos_rule(a, j)]
        neg = [dist(features[a], features[j]) for j in range(n) if neg_rule(a, j)]
        if pos and neg:
            out.append(max(pos) - min(neg) + MARGIN)
    return out


def rules(labels, modality):
    same = lambda a, j: labels[a] == labels[j]  # noqa: E731
    same_m = lambda a, j: modality[a] == modality[j]  # noqa: E731
    return {
        "cross": (lambda a, j: same(a, j) and not same_m(a, j), lambda a, j: not same(a, j) and not same_m(a, j)),
        "within": (lambda a, j: same(a, j) and same_m(a, j) and a != j, lambda a, j: not same(a, j) and same_m(a, j)),
        "hybrid": (lambda a, j: same(a, j) and not same_m(a, j), lambda a, j: not same(a, j) and same_m(a, j)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_smoothing_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    logits, labels, eps = torch.randn(10, 7, generator=g), torch.randint(0, 7, (10,), generator=g), 0.1
    expected = 0.0
    for row, y in zip(logits, labels):
        log_p = [float(v) - math.log(sum(math.exp(float(u)) for u in row)) for v in row]
        target = [eps / 7 + (1 - eps if c == int(y) else 0.0) for c in range(7)]
        expected += -sum(t * lp for t, lp in zip(target, log_p))
    got = LabelSmoothingCrossEntropy(eps)(logits, labels)
    assert got.item() == pytest.approx(expected / 10, rel=1e-5)
    assert got.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=eps).item(), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_modal_triplet_matches_loop(seed):
    features, labels, modality = batch(seed)
    pos, neg = rules(labels.tolist(), modality.tolist())["cross"]
    violations = loop_hard(features, labels.tolist(), modality.tolist(), pos, neg)
    expected = sum(max(v, 0.0) for v in violations) / len(violations)
    assert CrossModalTripletLoss(MARGIN)(features, labels, modality).item() == pytest.approx(expected, rel=1e-6)


def test_cross_modal_triplet_single_modality_is_zero_with_graph():
    features = torch.randn(6, 4, requires_grad=True)
    loss = CrossModalTripletLoss()(features, torch.tensor([0, 0, 1, 1, 2, 2]), torch.zeros(6, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mathm_matches_loop(seed):
    features, labels, modality = batch(seed, ids=5, per_id=4, dim=6)
    features = features * 0.3  # small distances so the three terms' violations differ in size
    lab, mod = labels.tolist(), modality.tolist()
    terms = {name: loop_hard(features, lab, mod, *r) for name, r in rules(lab, mod).items()}
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    g = {k: sum(sigmoid(v) for v in vs) / len(vs) for k, vs in terms.items()}
    mean_g = sum(g.values()) / len(g)
    expected = sum(mean_g / max(g[k], 0.1) * sum(max(v, 0.0) for v in vs) / len(vs) for k, vs in terms.items())
    loss_fn = ModalityAwareTripletLoss(MARGIN)
    assert loss_fn(features, labels, modality).item() == pytest.approx(expected, rel=1e-6)
    weights = loss_fn.weights(loss_fn.violations(features, labels, modality))
    for k in terms:
        assert weights[k].item() == pytest.approx(mean_g / max(g[k], 0.1), rel=1e-6)


def test_mathm_weights_are_detached_and_floored():
    features, labels, modality = batch(5)
    features.requires_grad_(True)
    loss_fn = ModalityAwareTripletLoss(MARGIN)
    violations = loss_fn.violations(features, labels, modality)
    assert set(violations) == {"cross", "within", "hybrid"}
    weights = loss_fn.weights(violations)
    assert all(not w.requires_grad for w in weights.values())
    tiny = {"a": torch.tensor([-50.0]), "b": torch.tensor([50.0])}  # g = ~0 and ~1
    w = loss_fn.weights(tiny)
    assert w["a"].item() == pytest.approx(0.5 / 0.1, rel=1e-4) and w["b"].item() == pytest.approx(0.5, rel=1e-4)
    loss_fn(features, labels, modality).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


NAMES = ("a", "b", "c")
CLASSES = {"a": 2, "b": 4, "c": 3}


def attribute_batch(seed: int, n: int = 9):
    g = torch.Generator().manual_seed(seed)
    logits = {k: torch.randn(n, c, generator=g, dtype=torch.float64) for k, c in CLASSES.items()}
    targets = torch.stack([torch.randint(-1, CLASSES[k], (n,), generator=g) for k in NAMES], 1)
    return logits, targets


def log_softmax_row(row):
    lse = math.log(sum(math.exp(float(v)) for v in row))
    return [float(v) - lse for v in row]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribute_loss_matches_loop_and_masks_unknown(seed):
    logits, targets = attribute_batch(seed)
    per_attr = []
    for col, name in enumerate(NAMES):
        terms = [-log_softmax_row(logits[name][i])[int(t)] for i, t in enumerate(targets[:, col]) if int(t) != -1]
        if terms:
            per_attr.append(sum(terms) / len(terms))
    expected = sum(per_attr) / len(per_attr)
    assert AttributeLoss(NAMES)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # all unknown: zero
    assert AttributeLoss(NAMES)(logits, torch.full_like(targets, -1)).item() == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_entropy_matches_loop(seed):
    logits, _ = attribute_batch(seed)
    mask = torch.tensor([True, False, True, True, False, False, True, False, True])
    per_attr = []
    for name in NAMES:
        ents = []
        for i in range(9):
            if mask[i]:
                lp = log_softmax_row(logits[name][i])
                ents.append(-sum(math.exp(v) * v for v in lp))
        per_attr.append(sum(ents) / len(ents) / math.log(CLASSES[name]))
    assert AttributeEntropyLoss(NAMES)(logits, mask).item() == pytest.approx(sum(per_attr) / 3, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consistency_matches_loop(seed):
    logits, _ = attribute_batch(seed, n=9)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3])
    modality = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1])  # id 3's sketch has no photo: left out
    per_attr = []
    for name in NAMES:
        kls = []
        for i in range(9):
            if modality[i] != 1:
                continue
            photos = [j for j in range(9) if labels[j] == labels[i] and modality[j] == 0]
            if not photos:
                continue
            probs = [[math.exp(v) for v in log_softmax_row(logits[name][j])] for j in photos]
            target = [sum(p[c] for p in probs) / len(probs) for c in range(CLASSES[name])]
            lp = log_softmax_row(logits[name][i])
            kls.append(sum(t * (math.log(t) - logp) for t, logp in zip(target, lp)))
        per_attr.append(sum(kls) / len(kls))
    got = AttributeConsistencyLoss(NAMES)(logits, labels, modality)
    assert got.item() == pytest.approx(sum(per_attr) / 3, rel=1e-6)


def test_gradient_reversal_sign():
    torch.manual_seed(0)
    features = torch.randn(30, 16)
    domains = torch.arange(3).repeat(10)
    features = features + domains[:, None].float()  # separable domains
    classifier = DomainClassifier(16, hidden=32, strength=0.7).eval()  # eval: no dropout noise
    loss_fn = DomainAdversarialLoss(classifier)

    x = features.clone().requires_grad_(True)
    loss_fn(x, domains).backward()
    reversed_grad = x.grad.clone()
    x.grad = None
    F.cross_entropy(classifier.head(x), domains).backward()  # the same head without reversal
    assert torch.allclose(reversed_grad, -0.7 * x.grad, atol=1e-6)
    assert reversed_grad.abs().sum() > 0

    # the head's own optimiser lowers the domain loss ...
    optimiser = torch.optim.SGD(classifier.parameters(), lr=0.1)
    before = loss_fn(features, domains).item()
    for _ in range(30):
        optimiser.zero_grad()
        loss_fn(features, domains).backward()
        optimiser.step()
    after = loss_fn(features, domains).item()
    assert after < before
    # ... while a descent step of the features along the gradient they receive raises it
    x = features.clone().requires_grad_(True)
    loss_fn(x, domains).backward()
    moved = (x - 0.5 * x.grad).detach()
    assert loss_fn(moved, domains).item() > after


def test_dann_strength_ramp():
    assert dann_strength(0.0) == 0.0
    assert 0.99 < dann_strength(1.0) <= 1.0
    assert dann_strength(0.1) < dann_strength(0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_similarity_distillation_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)  # another size

    def cosine(a, b):
        return sum(float(x) * float(y) for x, y in zip(a, b)) / math.sqrt(
            sum(float(x) ** 2 for x in a) * sum(float(y) ** 2 for y in b)
        )

    pairs = [(i, j) for i in range(6) for j in range(6) if i != j]
    s, t = student.detach(), teacher.detach()
    expected = sum((cosine(s[i], s[j]) - cosine(t[i], t[j])) ** 2 for i, j in pairs)
    loss = SimilarityDistillationLoss()(student, teacher)
    assert loss.detach().item() == pytest.approx(expected / len(pairs), rel=1e-5)
    loss.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None  # the teacher only shows, it does not learn
    # a student that already keeps the teacher's similarities (a rotated, rescaled copy) pays nothing
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0]
    copy = 3.0 * t @ rotation
    assert float(SimilarityDistillationLoss()(copy, t)) == pytest.approx(0.0, abs=1e-12)
    assert float(SimilarityDistillationLoss()(s[:1], t[:1])) == 0.0
