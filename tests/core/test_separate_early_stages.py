"""A shared backbone whose stem and first stages stay per modality: which layers are apart, what
they cost in parameters, where a sketch loss sends its gradient, and the checkpoint round trip
(torch and ONNX) that rebuilds the same network from the manifest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from core.common.errors import CheckpointError
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.backbones import BACKBONES, backbone_spec
from core.model.checkpoint import MANIFEST_FILE, load_checkpoint, read_manifest, save_checkpoint
from core.model.manifest import Manifest, write_json_atomically
from core.model.network import Modality, SketchPhotoNet, load_pretrained_backbones

SEPARATE = 2  # the stem, blocks.0 and blocks.1 of EfficientNet-Lite0


def network(separate: int = SEPARATE, shared: bool = True, **kwargs) -> SketchPhotoNet:
    torch.manual_seed(0)
    return SketchPhotoNet(
        "efficientnet_lite0",
        PERSON_ATTRIBUTES,
        embedding_dim=64,
        shared_backbone=shared,
        separate_early_stages=separate,
        **kwargs,
    )


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())  # parameters() counts a tied parameter once


def images(seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, 64, 32), dtype=np.float32))


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_names_its_stem_and_stages_at_every_stride(name):
    spec = backbone_spec(name)
    for stride in spec.feature_dims:
        model = spec.build(stride)
        modules = dict(model.named_modules())
        stages = spec.stages[stride]
        assert all(layer in modules for layer in spec.stem + stages), (name, stride)
        assert spec.early_layers(stride, 0) == ()
        assert spec.early_layers(stride, 1) == spec.stem + stages[:1]
        with pytest.raises(ValueError, match="stays shared"):  # at least the last stage is shared
            spec.early_layers(stride, len(stages))
    lite = backbone_spec("efficientnet_lite0")
    assert lite.early_layers(32, 2) == ("conv_stem", "bn1", "blocks.0", "blocks.1")
    assert len(lite.stages[32]) == 7 and len(lite.stages[16]) == 5 and len(lite.stages[8]) == 3


def test_separate_stages_add_their_convolutions_once_more():
    shared, apart = network(0), network(SEPARATE)
    early = backbone_spec("efficientnet_lite0").early_layers(32, SEPARATE)
    # the normalisation of every layer is per modality already; the early convolutions now are too
    early_convolutions = sum(
        p.numel()
        for name, module in shared.photo.backbone.named_modules()
        if isinstance(module, nn.Conv2d) and any(name == e or name.startswith(e + ".") for e in early)
        for p in module.parameters()
    )
    assert early_convolutions > 0
    assert count(apart) == count(shared) + early_convolutions
    assert apart.sketch.backbone.conv_stem.weight is not apart.photo.backbone.conv_stem.weight
    assert apart.sketch.backbone.blocks[1][0].conv_pw.weight is not apart.photo.backbone.blocks[1][0].conv_pw.weight
    assert apart.sketch.backbone.blocks[2][0].conv_pw.weight is apart.photo.backbone.blocks[2][0].conv_pw.weight
    assert apart.sketch.backbone.conv_head.weight is apart.photo.backbone.conv_head.weight
    # both copies start from the ImageNet weights, as training starts: only training sets them apart
    load_pretrained_backbones(apart)
    assert torch.equal(apart.sketch.backbone.conv_stem.weight, apart.photo.backbone.conv_stem.weight)


def test_default_is_the_fully_shared_or_fully_separate_network_as_before():
    shared = network(0)
    for (name, mine), (_, theirs) in zip(shared.sketch.backbone.named_modules(), shared.photo.backbone.named_modules()):
        if isinstance(mine, nn.Conv2d):
            assert mine.weight is theirs.weight, name
    assert shared.separate_early_stages == 0
    two = network(0, shared=False)
    assert count(two) == count(shared) + sum(
        p.numel() for m in two.sketch.backbone.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()
    ) + sum(p.numel() for p in two.sketch.projection.parameters())
    with pytest.raises(ValueError, match="shared backbone"):
        network(SEPARATE, shared=False)  # without sharing every layer is per modality already


def test_a_sketch_loss_trains_the_sketch_copy_and_the_shared_layers_only():
    net = network(SEPARATE).train()
    direction = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 64), dtype=np.float32))
    (net(images(), Modality.SKETCH).embedding * direction).sum().backward()
    sketch, photo = net.sketch.backbone, net.photo.backbone
    for layer in ("conv_stem", "blocks.0.0.conv_dw", "blocks.1.0.conv_pw"):
        assert sketch.get_submodule(layer).weight.grad.abs().sum() > 0, layer
        assert photo.get_submodule(layer).weight.grad is None, layer
    assert photo.bn1.weight.grad is None and sketch.bn1.weight.grad.abs().sum() > 0
    for layer in ("blocks.2.0.conv_pw", "blocks.6.0.conv_pwl", "conv_head"):  # shared: one parameter, one gradient
        assert sketch.get_submodule(layer).weight is photo.get_submodule(layer).weight
        assert photo.get_submodule(layer).weight.grad.abs().sum() > 0, layer


@pytest.fixture
def saved(tmp_path, model_dir):
    """The network with separate early stages, trained a step apart and saved under the bundled
    model's manifest (describing this network instead)."""
    net = network(SEPARATE, feature_stride=16)
    with torch.no_grad():  # the copies differ, as they do after training
        net.sketch.backbone.conv_stem.weight.mul_(1.5)
        net.photo.backbone.blocks[3][0].conv_pw.weight.mul_(0.5)  # shared: both encoders see it
    _, bundled = load_checkpoint(model_dir)
    manifest = dataclasses.replace(
        bundled,
        embedding_dim=64,
        shared_backbone=True,
        separate_early_stages=SEPARATE,
        parts=1,
        part_columns=1,
        feature_stride=16,
        onnx={},
    )
    save_checkpoint(net.eval(), manifest, tmp_path / "model")
    return net, tmp_path / "model"


def test_a_checkpoint_rebuilds_the_same_network(saved):
    net, folder = saved
    assert read_manifest(folder).separate_early_stages == SEPARATE
    assert read_manifest(folder).to_json()["separate_early_stages"] == SEPARATE
    loaded, _ = load_checkpoint(folder)
    assert loaded.separate_early_stages == SEPARATE
    assert loaded.sketch.backbone.conv_stem.weight is not loaded.photo.backbone.conv_stem.weight
    assert loaded.sketch.backbone.blocks[3][0].conv_pw.weight is loaded.photo.backbone.blocks[3][0].conv_pw.weight
    with torch.no_grad():
        for modality in Modality:
            assert torch.equal(loaded(images(1), modality).embedding, net(images(1), modality).embedding), modality


def test_a_manifest_that_shares_the_separate_layers_is_refused(saved):
    """A manifest edited to share every layer (or read by a version that knows no separate stages)
    would keep only one copy of the early layers: the load stops instead."""
    _, folder = saved
    data = read_manifest(folder).to_json()
    data["separate_early_stages"] = 0
    write_json_atomically(folder / MANIFEST_FILE, data)
    with pytest.raises(CheckpointError, match="share weights"):
        load_checkpoint(folder)
    data["separate_early_stages"] = 5  # all five stages of the stride-16 cut: none would stay shared
    write_json_atomically(folder / MANIFEST_FILE, data)
    with pytest.raises(CheckpointError, match="stays shared"):
        load_checkpoint(folder)


def test_the_manifest_field_is_checked_and_absent_from_older_manifests(model_dir):
    data = read_manifest(model_dir).to_json()
    del data["separate_early_stages"]
    assert Manifest.from_json(data).separate_early_stages == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(CheckpointError, match="separate_early_stages"):
            Manifest.from_json({**data, "shared_backbone": True, "separate_early_stages": bad})
    with pytest.raises(CheckpointError, match="shared backbone"):
        Manifest.from_json({**data, "shared_backbone": False, "separate_early_stages": 2})


def test_the_onnx_export_runs_the_same_network(saved):
    pytest.importorskip("onnxruntime")
    from core.model.loading import load_model
    from core.model.onnx_export import export_onnx

    _, folder = saved
    export_onnx(folder)
    on_torch, on_onnx = load_model(folder, "cpu", runtime="torch"), load_model(folder, "cpu", runtime="onnxruntime")
    pictures = [np.random.default_rng(i).integers(0, 256, (128, 64, 3), dtype=np.uint8) for i in range(2)]
    for modality in Modality:
        expected = on_torch.embed_images(pictures, modality).embeddings
        assert np.abs(on_onnx.embed_images(pictures, modality).embeddings - expected).max() < 1e-4, modality
