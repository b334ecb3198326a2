"""The photo-to-pencil augmentation and the per-modality early stages as fit options: their command
line spelling, their checks, and a tiny run that records both and exports a model that loads (torch
and ONNX) as the network it trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import load_checkpoint, read_manifest
from core.model.loading import load_model
from core.model.network import Modality
from tests.training.test_training_fit import TINY
from training.augment import PartialPencil
from training.cli import build_parser, fit_config, main
from training.config import ConfigError, FitConfig
from training.engine import build_data, build_network


def parsed(*options: str) -> FitConfig:
    return fit_config(build_parser().parse_args(["fit", "--root", "r", "--out", "o", *options]))


def test_the_options_are_spelled_on_the_command_line_and_off_by_default():
    default = parsed()
    assert not default.partial_pencil and default.pencil_settings() is None
    assert default.separate_early_stages == 0
    config = parsed(
        "--partial-pencil",
        "--pencil-whole",
        "0.1",
        "--pencil-whole-kernel",
        "21",
        "--pencil-region",
        "0.3",
        "--pencil-region-kernel",
        "15",
        "--share-backbone",
        "--separate-early-stages",
        "2",
    )
    assert config.pencil_settings() == PartialPencil(whole=0.1, whole_kernel=21, region=0.3, region_kernel=15)
    assert config.separate_early_stages == 2
    assert FitConfig.from_json(config.to_json()) == config  # what the run folder's config.json keeps


def test_separate_early_stages_are_checked():
    root = {"out": "o", "root": "r"}
    FitConfig(**root, share_backbone=True, separate_early_stages=6).check()
    with pytest.raises(ConfigError, match="share_backbone"):
        FitConfig(**root, separate_early_stages=2).check()
    with pytest.raises(ConfigError, match="stays shared"):
        FitConfig(**root, share_backbone=True, separate_early_stages=7).check()
    with pytest.raises(ConfigError, match="stays shared"):  # a stride-8 cut keeps three stages
        FitConfig(**root, share_backbone=True, separate_early_stages=3, feature_stride=8).check()


def test_the_data_and_network_of_a_run_use_the_options(pku_root, tmp_path):
    config = FitConfig(
        out=str(tmp_path),
        root=str(pku_root),
        limit_identities=4,
        validation_identities=0,
        p=2,
        k=2,
        share_backbone=True,
        separate_early_stages=1,
        partial_pencil=True,
    )
    assert build_data(config, PERSON_ATTRIBUTES).dataset.augmentation.pencil == PartialPencil()
    network = build_network(config, PERSON_ATTRIBUTES)
    assert network.separate_early_stages == 1
    assert network.sketch.backbone.conv_stem.weight is not network.photo.backbone.conv_stem.weight
    assert network.sketch.backbone.blocks[1][0].conv_pw.weight is network.photo.backbone.blocks[1][0].conv_pw.weight


def test_a_run_with_both_options_records_them_and_exports_the_network_it_trained(tmp_path, pku_root):
    out = tmp_path / "run"
    argv = ["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "1"]
    options = ["--partial-pencil", "--share-backbone", "--separate-early-stages", "2"]
    assert main([*argv, *options, *TINY]) == 0
    manifest = read_manifest(out / "model")
    assert manifest.shared_backbone and manifest.separate_early_stages == 2
    recorded = manifest.provenance["config"]
    assert recorded["partial_pencil"] and recorded["separate_early_stages"] == 2
    assert (recorded["pencil_whole"], recorded["pencil_region"]) == (0.05, 0.45)
    assert "--partial-pencil" in manifest.provenance["command"]

    network, _ = load_checkpoint(out / "model")
    sketch, photo = network.sketch.backbone, network.photo.backbone
    assert not torch.equal(sketch.conv_stem.weight, photo.conv_stem.weight)  # trained apart
    assert sketch.blocks[2][0].conv_pw.weight is photo.blocks[2][0].conv_pw.weight
    on_torch, on_onnx = load_model(out / "model", "cpu", runtime="torch"), load_model(out / "model", "cpu")
    assert on_onnx.runtime == "onnxruntime"
    pictures = [np.random.default_rng(i).integers(0, 256, (128, 64, 3), dtype=np.uint8) for i in range(2)]
    for modality in Modality:
        expected = on_torch.embed_images(pictures, modality).embeddings
        assert np.abs(on_onnx.embed_images(pictures, modality).embeddings - expected).max() < 1e-4, modality
