"""``fit --init``: a run starts from any model folder, taking every tensor that fits its network."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import WEIGHTS_FILE, read_manifest, save_checkpoint
from core.model.network import SketchPhotoNet
from core.model.untrained import init_checkpoint
from training.cli import main
from training.config import FitConfig
from training.engine import build_network
from training.warm_start import warm_start

# what the retired re-ID pre-training wrote as the kind of its model folders
RETIRED_PRETRAIN_KIND = "re-ID pre-training: encoder weights for fit --init, not a sketch search model"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_start(tmp_path, **provenance):
    """A model folder whose every tensor differs from the ImageNet start (the untrained manifest,
    with ``provenance`` added): whatever a warm start carries over can be told apart."""
    init_checkpoint(tmp_path / "untrained", "efficientnet_lite0", None, None, command="test")
    template = read_manifest(tmp_path / "untrained")
    network = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    manifest = dataclasses.replace(template, provenance={**template.provenance, **provenance})
    return save_checkpoint(network.eval(), manifest, tmp_path / "start")


def test_fit_init_starts_from_a_model_folder_and_records_it(tmp_path, pku_root):
    # a model folder written by the retired re-ID pre-training still starts a fit
    start = write_start(tmp_path, kind=RETIRED_PRETRAIN_KIND)
    stored = load_file(str(tmp_path / "start" / WEIGHTS_FILE))
    config = FitConfig(out=str(tmp_path / "fit"), root=str(pku_root), init=str(tmp_path / "start"))
    network = build_network(config, PERSON_ATTRIBUTES)
    ours = network.state_dict()
    # the same architecture: every tensor carries over but the untrained attribute head
    carried = [k for k in stored if not k.startswith("attributes.")]
    assert carried and all(torch.equal(ours[k], stored[k].to(ours[k].dtype)) for k in carried)
    head = [k for k in stored if k.startswith("attributes.") and k.endswith(".weight")]
    assert head and not any(torch.equal(ours[k], stored[k].to(ours[k].dtype)) for k in head)

    # and the whole fit runs from it, recording what it started from
    fit = [
        *("fit", "--root", str(pku_root), "--out", str(tmp_path / "fit"), "--init", str(tmp_path / "start")),
        *("--epochs", "1", "--limit-identities", "6", "--validation-identities", "2", "--p", "2", "--k", "2"),
        *("--steps-per-epoch", "1", "--height", "64", "--width", "32", "--workers", "0", "--threads", "1"),
        *("--no-progress", "--device", "cpu"),
    ]
    assert main(fit) == 0
    started = read_manifest(tmp_path / "fit" / "model").provenance["init"]
    assert started["weights_sha256"] == start.weights_sha256 and started["kind"] == RETIRED_PRETRAIN_KIND


def test_init_carries_matching_tensors_into_another_architecture(tmp_path):
    # a checkpoint whose two encoders differ (separate weights), loaded into a run whose encoders
    # share their convolutions and pool a grid at stride 16
    source = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_()
    init_checkpoint(tmp_path / "untrained", "efficientnet_lite0", None, None, command="test")
    template = read_manifest(tmp_path / "untrained")
    save_checkpoint(source.eval(), template, tmp_path / "source")
    stored = load_file(str(tmp_path / "source" / WEIGHTS_FILE))

    network = SketchPhotoNet(
        "efficientnet_lite0", PERSON_ATTRIBUTES, shared_backbone=True, feature_stride=16, parts=4, part_columns=2
    )
    start = warm_start(network, tmp_path / "source")
    state = network.state_dict()
    # the cut backbone's tensors carry over; a shared convolution takes the photo encoder's
    conv = "blocks.4.0.conv_pw.weight"
    assert torch.equal(state[f"photo.backbone.{conv}"], stored[f"photo.backbone.{conv}"].float())
    assert torch.equal(state[f"sketch.backbone.{conv}"], stored[f"photo.backbone.{conv}"].float())
    # normalisation stays per modality, so each encoder's own
    bn = "sketch.backbone.bn1.weight"
    assert torch.equal(state[bn], stored[bn].float()) and not torch.equal(state[bn], stored[f"photo{bn[6:]}"].float())
    # the neck has another width (a 4x2 grid of 112 channels): kept as initialised, so is the
    # untrained attribute head
    assert "photo.neck.weight" in start.kept and not any(k.startswith("attributes.") for k in start.loaded)
    assert "photo.backbone.conv_head.weight" not in state  # beyond stride 16: not in this network
