"""Folded convolution + batch norm pairs give the outputs and gradients of the unfolded network, and
leave the modules as they were; the adaptation's prefetching keeps order and errors."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from core.model.checkpoint import load_checkpoint
from core.model.network import Modality
from training.adapt import prefetched
from training.batchnorm_folding import conv_bn_pairs, folded_batch_norms


def statistics_frozen(network: nn.Module) -> nn.Module:
    """Train mode with every batch norm on its stored statistics, as adaptation runs by default."""
    network.train()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return network


def embedding_and_gradients(network: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
    network.zero_grad()
    embedding = network(images, Modality.PHOTO).embedding
    (embedding**2).sum().backward()
    grads = {name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None}
    return embedding.detach(), grads


def test_folded_network_gives_the_same_embeddings_and_gradients(model_dir):
    network = statistics_frozen(load_checkpoint(model_dir)[0])
    images = torch.randn(4, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    plain, plain_grads = embedding_and_gradients(network, images)
    state = {k: v.clone() for k, v in network.state_dict().items()}
    with folded_batch_norms(network) as folded_pairs:
        assert folded_pairs == len(conv_bn_pairs(network)) > 30  # every convolution of the backbone
        folded, folded_grads = embedding_and_gradients(network, images)
    torch.testing.assert_close(folded, plain, rtol=1e-4, atol=1e-4)
    assert folded_grads.keys() == plain_grads.keys()  # the batch norms' gamma and beta still learn
    for name, grad in plain_grads.items():
        torch.testing.assert_close(folded_grads[name], grad, rtol=1e-3, atol=1e-3 * float(grad.abs().max()))
    # nothing about the modules changed: same state, the class's forward back in place
    assert all(torch.equal(state[k], v) for k, v in network.state_dict().items())
    assert not any("forward" in vars(module) for module in network.modules())


def test_a_batch_norm_in_train_mode_runs_unfolded():
    network = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU())
    images = torch.randn(2, 3, 8, 8)
    reference = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU())
    reference.load_state_dict(network.state_dict())
    with folded_batch_norms(network):
        torch.testing.assert_close(network(images), reference(images))  # batch statistics
        assert torch.equal(network[1].running_mean, reference[1].running_mean)  # and they are gathered
        network.eval(), reference.eval()
        torch.testing.assert_close(network(images), reference(images), rtol=1e-5, atol=1e-5)  # folded, bias and all


def test_prefetched_keeps_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(20)))) == list(range(20))

    def failing():
        yield 1
        raise ValueError("unreadable")

    with pytest.raises(ValueError, match="unreadable"):
        list(prefetched(failing()))


def test_closing_prefetched_stops_its_thread():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    items = prefetched(endless())
    assert next(items) == 0
    items.close()
    assert threading.active_count() == before
    assert len(produced) <= 3  # at most one ahead of the consumer, plus the one in hand
