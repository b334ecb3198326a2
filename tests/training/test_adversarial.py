"""The adversarial consistency loss (worst-case input perturbations, KTCAA): off by default and then
inert, its perturbation's size in pixels, what the probing step leaves alone, that the step goes
uphill, and its settings on the command line, in the run's records and in older records."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from core.model.checkpoint import read_manifest
from core.model.network import Modality
from training.adversarial import (
    adversarial_consistency,
    divergence,
    input_scale,
    random_start,
    running_stats_frozen,
    uphill_step,
    worst_case_images,
)
from training.cli import build_parser, fit_config, main
from training.config import ConfigError, FitConfig, LossWeights
from training.engine import Trainer, forward_mixed

EPSILON = 4 / 255
TINY = dict(
    limit_identities=6,
    validation_identities=2,
    p=4,
    k=4,
    steps_per_epoch=1,
    # at 64 x 32 the last feature map is 2 x 1: train-mode batch norms over so few values make the
    # embedding of so small a batch chaotic, and no step direction is better than another
    height=128,
    width=64,
    workers=0,
    threads=1,
    progress=False,
    device="cpu",
    epochs=1,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_trainer(folder, pku_root, adversarial: float = 0.0, **settings) -> Trainer:
    config = FitConfig(
        out=str(folder), root=str(pku_root), losses=LossWeights(adversarial=adversarial), **TINY, **settings
    )
    return Trainer(config, command="sketchsearch-train fit (test)")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, pku_root) -> Trainer:
    return make_trainer(tmp_path_factory.mktemp("adversarial"), pku_root, adversarial=1.0)


@pytest.fixture(scope="module")
def batch(trainer) -> dict:
    batch = next(iter(trainer._loader(0)))
    assert set(batch["modality"].tolist()) == {0, 1}  # photos and sketches, each through its encoder
    return batch


def embedder(trainer: Trainer, modality: torch.Tensor):
    return lambda images: forward_mixed(trainer.network, images, modality)[1]


def to_pixels(image: torch.Tensor, config) -> torch.Tensor:
    """A network input image (3 x H x W) back in pixel units, by its preprocessing's own figures."""
    return image * torch.tensor(config.std).view(3, 1, 1) + torch.tensor(config.mean).view(3, 1, 1)


def running_stats(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in network.named_buffers()}


def test_off_by_default_and_then_inert(tmp_path, pku_root):
    default = FitConfig(out="o", root="r")
    assert default.losses.adversarial == 0.0 and default.adversarial_epsilon == EPSILON
    runs = {
        "recipe": {},
        "off": {"adversarial": 0.0, "adversarial_epsilon": 8 / 255},
        "on": {"adversarial": 1.0},
    }
    stepped, trainers = {}, {}
    for name, settings in runs.items():  # each as a run goes: seeded, then one step
        trainers[name] = make_trainer(tmp_path / name, pku_root, **settings)
        trainers[name].train_epoch(0)
        stepped[name] = trainers[name].network.state_dict()
    assert all(torch.equal(stepped["recipe"][k], stepped["off"][k]) for k in stepped["recipe"])
    assert not all(torch.equal(stepped["recipe"][k], stepped["on"][k]) for k in stepped["recipe"])
    batch = next(iter(trainers["off"]._loader(0)))
    assert "adversarial" not in trainers["off"].compute_losses(batch, "co-train")
    assert "adversarial" in trainers["on"].compute_losses(batch, "co-train")


def test_the_perturbation_is_within_epsilon_pixels_on_every_channel(trainer, batch):
    images, modality = batch["image"], batch["modality"]
    trainer.network.train()
    with torch.no_grad(), running_stats_frozen(trainer.network):
        clean = embedder(trainer, modality)(images)
    with running_stats_frozen(trainer.network):
        worst = worst_case_images(
            embedder(trainer, modality), images, clean, input_scale(trainer.configs, modality), EPSILON
        )
    assert worst.shape == images.shape
    for row, value in enumerate(modality.tolist()):
        config = trainer.configs[Modality.PHOTO if value == 0 else Modality.SKETCH]
        before, after = to_pixels(images[row], config), to_pixels(worst[row], config)
        change = (after - before).abs()
        assert change.amax().item() <= EPSILON + 1e-5, row
        assert after.amin().item() >= -1e-5 and after.amax().item() <= 1 + 1e-5  # still a picture
        for channel in range(3):  # the same size in pixels on every channel, and not nothing
            assert change[channel].amax().item() == pytest.approx(EPSILON, abs=1e-5), (row, channel)
            assert (change[channel] > EPSILON / 2).float().mean() > 0.25, (row, channel)
        if config.greyscale:  # a sketch stays grey
            assert torch.allclose(after[0], after[1], atol=1e-5) and torch.allclose(after[0], after[2], atol=1e-5)
        else:  # a photo's channels are each nudged their own way
            assert not torch.allclose(after[0] - before[0], after[1] - before[1], atol=1e-3)


def test_the_probe_leaves_running_statistics_and_gradients_alone(trainer, batch):
    images, modality = batch["image"], batch["modality"]
    network = trainer.network.train()
    network.zero_grad(set_to_none=True)
    embed = embedder(trainer, modality)
    before = running_stats(network)
    clean = embed(images)  # an ordinary training forward: it moves the running statistics
    moved = running_stats(network)
    assert any(not torch.equal(before[name], moved[name]) for name in before if "running_mean" in name)
    scale = input_scale(trainer.configs, modality)
    with running_stats_frozen(network):
        uphill_step(embed, images, clean, scale, EPSILON, random_start(images, scale, EPSILON))
    after = running_stats(network)
    assert all(torch.equal(moved[name], after[name]) for name in moved)
    assert all(p.grad is None for p in network.parameters())
    norms = [m for m in network.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert network.training and norms and all(m.track_running_stats for m in norms)

    # the loss itself: the network learns through the perturbed branch, never through the clean one
    target = clean.detach().requires_grad_(True)
    loss = adversarial_consistency(network, embed, images, target, scale, EPSILON)
    assert all(torch.equal(moved[name], value) for name, value in running_stats(network).items())
    loss.backward()
    assert target.grad is None
    assert network.photo.backbone.conv_stem.weight.grad.abs().sum() > 0
    assert network.sketch.backbone.conv_stem.weight.grad.abs().sum() > 0


def test_the_step_goes_uphill(trainer, batch):
    images, modality = batch["image"], batch["modality"]
    network = trainer.network.train()
    embed = embedder(trainer, modality)
    scale = input_scale(trainer.configs, modality)
    torch.manual_seed(0)
    with running_stats_frozen(network):
        clean = embed(images).detach()
        start = random_start(images, scale, EPSILON)
        stepped = uphill_step(embed, images, clean, scale, EPSILON, start)
        # steps as large from the same start, in a random direction and against the gradient: the
        # step's direction is what counts, not its size (any move away from the clean image diverges)
        pixels = scale.to_pixels(images)
        sideways = start + EPSILON * torch.randint_like(start, 2).mul(2).sub(1)
        downhill = start - EPSILON * torch.sign(stepped - start)
        with torch.no_grad():
            at = {
                name: divergence(clean, embed(scale.perturb(images, within(change, pixels)))).mean().item()
                for name, change in (("start", start), ("step", stepped), ("random", sideways), ("downhill", downhill))
            }
    assert at["step"] > max(at["start"], at["random"], at["downhill"]), at


def within(change: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(change.clamp(-EPSILON, EPSILON), -pixels), 1 - pixels)


def parsed(command: str, *options: str) -> FitConfig:
    arguments = ["fit", "--root", "r", "--out", "o"] if command == "fit" else ["benchmark", "pku", "--root", "r"]
    return fit_config(build_parser().parse_args([*arguments, *options]), out="o")


@pytest.mark.parametrize("command", ["fit", "benchmark"])
def test_the_settings_on_the_command_line(command):
    assert parsed(command).losses.adversarial == 0.0
    config = parsed(command, "--adversarial", "0.5", "--adversarial-epsilon", "0.01")
    assert config.losses.adversarial == 0.5 and config.adversarial_epsilon == 0.01
    assert parsed(command, "--w-adversarial", "0.25").losses.adversarial == 0.25  # as every loss weight
    assert FitConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_the_settings_are_checked():
    for epsilon in (0.0, -0.01, 1.5):
        with pytest.raises(ConfigError, match="adversarial_epsilon"):
            FitConfig(out="o", root="r", losses=LossWeights(adversarial=1.0), adversarial_epsilon=epsilon).check()
    FitConfig(out="o", root="r", adversarial_epsilon=0.0).check()  # off: the bound is not used


def test_older_configs_and_manifests_without_the_settings_load(model_dir):
    saved = FitConfig(out="o", root="r").to_json()
    del saved["losses"]["adversarial"], saved["adversarial_epsilon"]
    config = FitConfig.from_json(saved)
    assert config.losses.adversarial == 0.0 and config.adversarial_epsilon == EPSILON
    recorded = read_manifest(model_dir).provenance["config"]  # the shipped model's run
    assert "adversarial" not in recorded["losses"] and "adversarial_epsilon" not in recorded
    assert FitConfig.from_json(recorded).losses.adversarial == 0.0


def test_a_run_records_the_settings_and_logs_the_loss(tmp_path, pku_root):
    out = tmp_path / "run"
    tiny = ["--limit-identities", "6", "--validation-identities", "2", "--p", "2", "--k", "2"]
    tiny += ["--steps-per-epoch", "1", "--height", "64", "--width", "32", "--workers", "0", "--threads", "1"]
    argv = ["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert main([*argv, *tiny, "--adversarial", "0.5", "--adversarial-epsilon", "0.02"]) == 0
    provenance = read_manifest(out / "model").provenance
    assert provenance["config"]["losses"]["adversarial"] == 0.5
    assert provenance["config"]["adversarial_epsilon"] == 0.02
    assert "--adversarial 0.5" in provenance["command"]
    assert FitConfig.from_json(json.loads((out / "config.json").read_text())).losses.adversarial == 0.5
    (row,) = csv.DictReader((out / "log.csv").read_text().splitlines())
    assert float(row["adversarial"]) > 0
