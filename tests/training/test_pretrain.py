"""Re-ID pre-training on a tiny re-ID folder: the checkpoint ``fit --init`` starts from, the
distractor guard, resuming after a stop, and how ``--init`` carries tensors over."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_reid_source import write_reid_folder

from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import WEIGHTS_FILE, load_checkpoint, read_manifest, save_checkpoint
from core.model.network import SketchPhotoNet
from core.model.untrained import init_checkpoint
from training.cli import main
from training.config import FitConfig
from training.engine import build_network
from training.warm_start import warm_start

# ids on both sides of CUHK03's 0742/0743 boundary: 0743 and 0800 are large-gallery distractors
IDS = ["0000", "0001", "0002", "0003", "0004", "0005", "0742", "0743", "0800"]
TINY = [
    "--source",
    "reid",
    "--validation-identities",
    "2",
    "--p",
    "2",
    "--k",
    "4",
    "--steps-per-epoch",
    "2",
    "--height",
    "64",
    "--width",
    "32",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-progress",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cuhk03(tmp_path) -> Path:
    """A folder named and laid out as the shared CUHK03 (generated images, two cameras)."""
    return write_reid_folder(tmp_path / "cuhk03", IDS)


def pretrain(cuhk03: Path, out: Path, *extra: str) -> int:
    return main(["pretrain", "--source-root", str(cuhk03), "--out", str(out), *TINY, *extra])


def test_pretrain_writes_a_checkpoint_that_fit_init_starts_from(tmp_path, cuhk03, pku_root, capsys):
    out = tmp_path / "pretrain"
    assert pretrain(cuhk03, out, "--epochs", "1", "--pseudo-sketches") == 0
    assert "fit --init" in capsys.readouterr().out
    manifest = read_manifest(out / "model")
    provenance = manifest.provenance
    data = provenance["data"]
    # the distractor ids never reached training or validation
    used = set(data["train_identities"]) | set(data["validation_identities"])
    assert used == {"0000", "0001", "0002", "0003", "0004", "0005", "0742"} and data["ids"] == "0000-0742"
    assert len(data["validation_identities"]) == 2 and data["train_photos"] == 5 * 4
    assert data["pseudo_sketches"] == 20 and provenance["losses"] == ["identity", "triplet", "mathm"]
    assert provenance["command"].startswith("sketchsearch-train pretrain") and provenance["seed"] == 0
    assert provenance["epochs"] == 1 and provenance["selected_epoch"] == 1
    assert set(provenance["final_losses"]) == {"loss", "identity", "triplet", "mathm"}
    assert "pre-training" in provenance["kind"] and provenance["validation"]["queries"] == 2 * 4
    assert "research use only" in manifest.licence and "CUHK03" in manifest.data_terms
    assert not manifest.attribute_head_trained  # re-ID photos carry no attribute labels
    assert (out / "model" / WEIGHTS_FILE).is_file() and (out / "best" / WEIGHTS_FILE).is_file()

    # fit --init: the fit's network (same architecture) holds every tensor of the checkpoint but
    # the untrained attribute head
    stored = load_file(str(out / "model" / WEIGHTS_FILE))
    config = FitConfig(out=str(tmp_path / "fit"), root=str(pku_root), init=str(out / "model"))
    network = build_network(config, PERSON_ATTRIBUTES)
    ours = network.state_dict()
    carried = [k for k in stored if not k.startswith("attributes.")]
    assert carried and all(torch.equal(ours[k], stored[k].to(ours[k].dtype)) for k in carried)
    fresh = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES).state_dict()
    assert not torch.equal(ours["photo.backbone.conv_stem.weight"], fresh["photo.backbone.conv_stem.weight"])

    # and the whole fit runs from it, recording what it started from
    fit = [
        *("fit", "--root", str(pku_root), "--out", str(tmp_path / "fit"), "--init", str(out / "model")),
        *("--epochs", "1", "--limit-identities", "6", "--validation-identities", "2", "--p", "2", "--k", "2"),
        *("--steps-per-epoch", "1", "--height", "64", "--width", "32", "--workers", "0", "--threads", "1"),
        *("--no-progress", "--device", "cpu"),
    ]
    assert main(fit) == 0
    started = read_manifest(tmp_path / "fit" / "model").provenance["init"]
    assert started["weights_sha256"] == manifest.weights_sha256 and "pre-training" in started["kind"]


def test_without_pseudo_sketches_the_sketch_encoder_is_the_photo_encoder(tmp_path, cuhk03):
    out = tmp_path / "pretrain"
    assert pretrain(cuhk03, out, "--epochs", "1") == 0
    network, manifest = load_checkpoint(out / "model")
    assert manifest.provenance["losses"] == ["identity", "triplet"]
    photo, sketch = network.photo.state_dict(), network.sketch.state_dict()
    assert all(torch.equal(photo[k], sketch[k]) for k in photo)
    fresh = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES)
    assert not torch.equal(photo["neck.running_mean"], fresh.photo.neck.running_mean)  # it trained


def test_pretrain_refuses_the_large_gallery_distractors(tmp_path, cuhk03, capsys):
    # asking for the distractor ids stops the run before anything is written
    assert pretrain(cuhk03, tmp_path / "asked", "--source-ids", "0000-0842") == 2
    assert "cuhk03/0743, cuhk03/0800" in capsys.readouterr().err
    assert not (tmp_path / "asked" / "state.pt").exists()
    # CUHK01 is a distractor set as a whole
    cuhk01 = write_reid_folder(tmp_path / "cuhk01", ["0001", "0002", "0003", "0004"])
    assert pretrain(cuhk01, tmp_path / "cuhk01-run") == 2
    assert "large-gallery distractors" in capsys.readouterr().err
    assert not (tmp_path / "cuhk01-run" / "state.pt").exists()


def test_a_stopped_run_resumes_where_it_stopped_and_ends_as_an_unbroken_one(tmp_path, cuhk03, capsys):
    straight = tmp_path / "straight"
    assert pretrain(cuhk03, straight, "--epochs", "2") == 0

    stopped = tmp_path / "stopped"
    signalled = threading.Event()

    def terminate_once_started() -> None:  # a TERM signal as soon as the run has begun
        deadline = time.monotonic() + 120
        while not (stopped / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)
        signalled.set()

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # outside the command, the test's own
    try:
        killer = threading.Thread(target=terminate_once_started)
        killer.start()
        code = pretrain(cuhk03, stopped, "--epochs", "2")
        killer.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signalled.is_set() and code == 128 + signal.SIGTERM
    assert "run the same command again to resume" in capsys.readouterr().err
    state = torch.load(stopped / "state.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) < (2, 0)  # stopped before the end
    assert not (stopped / "model").exists()

    assert pretrain(cuhk03, stopped, "--epochs", "2") == 0
    history = read_manifest(stopped / "model").provenance["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    assert [r["step"] for r in history] == [2, 4]
    resumed = load_file(str(stopped / "model" / WEIGHTS_FILE))
    expected = load_file(str(straight / "model" / WEIGHTS_FILE))
    assert resumed.keys() == expected.keys()
    assert all(torch.allclose(resumed[k], expected[k], atol=1e-5) for k in expected)

    # a finished run run again writes the same model again; other settings are refused
    assert pretrain(cuhk03, stopped, "--epochs", "2") == 0
    assert pretrain(cuhk03, stopped, "--epochs", "3") == 2
    assert "other settings (epochs 2 there, 3 here)" in capsys.readouterr().err
    # a run saved by an earlier version, which also recorded per-modality early stages: off, it resumes
    saved = json.loads((stopped / "config.json").read_text(encoding="utf-8"))
    (stopped / "config.json").write_text(json.dumps({**saved, "separate_early_stages": 0}), encoding="utf-8")
    assert pretrain(cuhk03, stopped, "--epochs", "2") == 0
    (stopped / "config.json").write_text(json.dumps({**saved, "separate_early_stages": 2}), encoding="utf-8")
    assert pretrain(cuhk03, stopped, "--epochs", "2") == 2
    assert "other settings (separate_early_stages 2 there, None here)" in capsys.readouterr().err


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
