"""A tiny end-to-end run on CPU: a handful of PKU-Sketch identities plus a Market-1501-layout source,
two optimiser steps, export, reload through the inference path, resume, and the CLI."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_test_helpers import write_image

from core.common.imaging import load_rgb
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import WEIGHTS_FILE, load_checkpoint, read_manifest
from core.model.inference import InferenceModel
from core.model.network import Modality
from training.cli import main
from training.data import ImageRecord, pku_sketch
from training.engine import attribute_log_priors, forward_mixed, selection_score

TINY = [
    "--limit-identities",
    "6",
    "--validation-identities",
    "2",
    "--p",
    "2",
    "--k",
    "2",
    "--steps-per-epoch",
    "1",
    "--height",
    "64",
    "--width",
    "32",
    "--workers",
    "0",
    "--threads",
    "1",
    "--no-progress",
    "--device",
    "cpu",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fit_exports_a_loadable_checkpoint(tmp_path, pku_root, market_root, capsys):
    out = tmp_path / "run"
    argv = [
        "fit",
        "--root",
        str(pku_root),
        "--split",
        "1",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--source",
        "market1501",
        "--source-root",
        str(market_root),
        "--source-epochs",
        "1",
        "--source-share",
        "0.34",
        *TINY,
        "--p",
        "3",
    ]
    assert main(argv) == 0
    assert "test: sketch->photo R1" in capsys.readouterr().out

    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["phase"] for r in rows] == ["source", "co-train"]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert rows[1]["domain"] and rows[1]["triplet"] and rows[1]["val_R1"]

    manifest = read_manifest(out / "model")
    provenance = manifest.provenance
    assert manifest.licence.startswith("research use only")
    assert "PKU-Sketch" in manifest.data_terms and "Market-1501" in manifest.data_terms
    assert manifest.attribute_head_trained
    assert provenance["split"] == "pku-1" and provenance["seed"] == 0
    assert provenance["command"].startswith("sketchsearch-train fit")
    assert "commit" in provenance["git"]
    test = provenance["metrics"]["test"]
    assert {"R1", "R5", "R10", "R20", "mAP"} <= set(test) and test["queries"] == 6
    # validation identities come from the training side, never the test side
    test_ids = {r.identity for r in pku_sketch(pku_root, 1, attributes=False).test}
    assert not set(provenance["data"]["validation_identities"]) & test_ids
    assert manifest.preprocess[Modality.SKETCH].greyscale and manifest.preprocess[Modality.PHOTO].height == 64
    # by default the model cleans sketches up as the app's queries are, and averages mirror images
    assert manifest.preprocess[Modality.SKETCH].clean_sketch and not manifest.preprocess[Modality.PHOTO].clean_sketch
    assert manifest.test_time_flip

    model = InferenceModel(out / "model", "cpu")
    sketch = load_rgb(next(pku_root.glob("sketch/1.jpg")))
    batch = model.embed_images([sketch], Modality.SKETCH)
    assert batch.embeddings.shape == (1, model.embedding_dim)
    assert np.linalg.norm(batch.embeddings[0]) == pytest.approx(1.0, abs=1e-4)
    assert set(batch.attributes[0]) == set(manifest.attribute_schema.names)

    # resuming a finished run trains nothing more and exports the same selected weights
    before = load_checkpoint(out / "best")[0].state_dict()
    assert main(argv) == 0
    assert len(list(csv.DictReader(open(out / "log.csv")))) == 2
    after = load_checkpoint(out / "model")[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bundled_recipe_exports_a_shared_backbone_measured_as_stored(tmp_path, pku_root):
    """--pseudo-sketches and --share-backbone through the CLI; with --half the stored weights are
    float16, and they reproduce the recorded test figures."""
    from training.config import FitConfig
    from training.engine import prepare_data
    from training.evaluate import evaluate_records, headline

    out = tmp_path / "run"
    argv = [
        "fit",
        "--root",
        str(pku_root),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--pseudo-sketches",
        "--share-backbone",
        "--half",
        *TINY,
    ]
    assert main(argv) == 0
    manifest = read_manifest(out / "model")
    data = manifest.provenance["data"]
    assert manifest.shared_backbone
    assert data["pseudo_sketches"] == 2 * data["train_identities"]  # one per photo, two photos a person
    network, _ = load_checkpoint(out / "model")
    assert network.sketch.backbone.conv_stem.weight is network.photo.backbone.conv_stem.weight
    assert all(
        t.dtype == torch.float16 for t in load_file(str(out / "model" / WEIGHTS_FILE)).values() if t.is_floating_point()
    )

    config = FitConfig.from_json(json.loads((out / "config.json").read_text()))
    test = prepare_data(config).test
    measured = headline(evaluate_records(InferenceModel(out / "model", "cpu"), test, manifest.attribute_schema))
    recorded = manifest.provenance["metrics"]["test"]
    for key in ("R1", "R5", "R10", "R20", "mAP"):
        assert measured[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_resume_continues_from_state(tmp_path, pku_root):
    out = tmp_path / "run"
    assert main(["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "1", *TINY]) == 0
    state = torch.load(out / "state.pt", weights_only=True)
    state["best_score"] = state["best_score"][0]  # as states were written before the margin
    torch.save(state, out / "state.pt")
    log = out / "log.csv"  # as logs were written before the consistency loss: no such column
    header, first = log.read_text().splitlines()[:2]
    names, values = header.split(","), first.split(",")
    keep = [i for i, name in enumerate(names) if name != "consistency"]
    log.write_text("\n".join(",".join(row[i] for i in keep) for row in (names, values)) + "\n")
    assert main(["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "2", *TINY]) == 0
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["step"] == "2"
    assert all(r["val_margin"] for r in rows) and None not in rows[1]  # the old columns, aligned


def test_a_fixed_schedule_trains_on_every_training_person_and_keeps_the_last_epoch(tmp_path, pku_root):
    """``--validation-identities 0``: no one is held out, nothing is validated, the last epoch is
    exported and measured on the test people."""
    out = tmp_path / "run"
    assert (
        main(
            ["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "2", *TINY, "--validation-identities", "0"]
        )
        == 0
    )
    provenance = read_manifest(out / "model").provenance
    assert provenance["data"]["train_identities"] == 6 and provenance["data"]["validation_identities"] == []
    metrics = provenance["metrics"]
    assert metrics["validation"] is None and metrics["selected_epoch"] == metrics["epochs"] == 2
    assert metrics["test"]["queries"] == 6
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and not any(r["val_R1"] for r in rows)
    # the exported weights are the last epoch's
    last, _ = load_checkpoint(out / "best")
    exported, _ = load_checkpoint(out / "model")
    assert all(torch.equal(a, b) for a, b in zip(last.state_dict().values(), exported.state_dict().values()))


def test_epoch_selection_breaks_saturated_ties_by_the_margin():
    saturated = {"R1": 100.0, "mAP": 100.0}
    assert selection_score({**saturated, "margin": 17.0}) > selection_score({**saturated, "margin": 12.0})
    # the margin only breaks ties: a better ranking wins whatever its margin
    assert selection_score({"R1": 90.0, "mAP": 95.0, "margin": 5.0}) > selection_score(
        {"R1": 80.0, "mAP": 95.0, "margin": 30.0}
    )


def test_evaluate_and_benchmark_cli(tmp_path, pku_root, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "--root",
                str(pku_root),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--w-domain",
                "0",
                "--no-target-attributes",
                *TINY,
            ]
        )
        == 0
    )
    (row,) = csv.DictReader(open(out / "log.csv"))
    assert float(row["entropy"]) > 0 and row["attribute"] == "0.00000" and row["domain"] == ""  # nothing labelled
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--dataset",
                "pku",
                "--root",
                str(pku_root),
                "--split",
                "1",
                "--model",
                str(out / "model"),
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert {"R1", "R5", "R10", "R20", "mAP", "attribute_accuracy", "photo_to_sketch"} <= set(figures)
    assert figures["queries"] == 49 and figures["gallery"] == 100  # split 1 test side: 50 ids, one lost sketch
    assert 0 <= figures["R1"] <= figures["R5"] <= figures["R10"] <= figures["R20"] <= 100
    # the same weights measured without the manifest's flip: other vectors, other figures
    assert (
        main(
            [
                "evaluate",
                "--root",
                str(pku_root),
                "--model",
                str(out / "model"),
                "--device",
                "cpu",
                "--no-test-time-flip",
                "--json",
            ]
        )
        == 0
    )
    unflipped = json.loads(capsys.readouterr().out)
    assert unflipped["queries"] == 49 and unflipped["mAP"] != figures["mAP"]
    # the large-gallery protocol: generated photos of other people join each split's gallery
    distractors = tmp_path / "others"
    for pid in range(4):
        for cam in "ab":
            write_image(distractors / f"{pid:04d}_{cam}_00.jpg", 10 * pid + ord(cam), size=(48, 128))
    bench = ["benchmark", "pku", "--root", str(pku_root), "--model", str(out / "model"), "--splits", "1", "2"]
    assert main([*bench, "--distractors", str(distractors), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["splits"]) == {"1", "2"} and result["splits"]["1"]["R1"] == figures["R1"]
    assert set(result["summary"]["R1"]) == {"mean", "std"}
    for split in result["splits"].values():
        large = split["large_gallery"]
        assert large["gallery"] == 100 + 8
        # more photos of other people can only push a true match down the list
        assert all(large[k] <= split[k] for k in ("R1", "R5", "R10", "R20", "mAP"))
    assert set(result["summary"]) == {
        *"R1 R5 R10 R20 mAP".split(),
        *"large R1|large R5|large R10|large R20|large mAP".split("|"),
    }
    # a distractor folder with a badly named photo: a one-line error naming it, exit code 2
    write_image(distractors / "stray.jpg", 3)
    assert main([*bench, "--distractors", str(distractors)]) == 2
    assert "stray.jpg: not a re-ID photo name" in capsys.readouterr().err
    # per painting style, each split's queries pooled
    assert sum(f["queries"] for f in figures["by_style"].values()) == 49
    assert sum(f["queries"] for f in result["by_style"].values()) == 49 + 50


def test_init_still_works(tmp_path):
    assert main(["init", "--out", str(tmp_path / "init")]) == 0
    assert not read_manifest(tmp_path / "init").attribute_head_trained


def test_attribute_log_priors():
    records = [
        ImageRecord("a", "1", Modality.PHOTO, {"hat": "yes"}),
        ImageRecord("b", "2", Modality.PHOTO, {"hat": "no"}),
        ImageRecord("c", "3", Modality.PHOTO, {"hat": "no"}),
        ImageRecord("d", "4", Modality.PHOTO, None),
    ]
    priors = attribute_log_priors(records, PERSON_ATTRIBUTES, smoothing=1.0)
    assert torch.allclose(priors["hat"].exp(), torch.tensor([2 / 5, 3 / 5]))  # yes, no with add-one
    assert torch.allclose(priors["gender"].exp(), torch.tensor([0.5, 0.5]))  # nobody labelled


def test_forward_mixed_keeps_batch_order():
    from core.model.network import SketchPhotoNet

    torch.manual_seed(0)
    network = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES).eval()
    images = torch.randn(5, 3, 32, 16)
    modality = torch.tensor([1, 0, 1, 0, 0])
    with torch.no_grad():
        feature, embedding = forward_mixed(network, images, modality)
        for i, m in enumerate(modality.tolist()):
            expected = network(images[i : i + 1], "sketch" if m else "photo")
            assert torch.allclose(feature[i], expected.feature[0], atol=1e-5)
            assert torch.allclose(embedding[i], expected.embedding[0], atol=1e-5)


def test_clean_up_and_flip_can_be_turned_off_from_the_command_line(tmp_path):
    from training.cli import build_parser, fit_config

    args = build_parser().parse_args(
        ["fit", "--root", str(tmp_path), "--out", str(tmp_path / "run"), "--no-clean-sketches", "--no-test-time-flip"]
    )
    config = fit_config(args)
    assert config.clean_sketches is False and config.test_time_flip is False
    defaults = fit_config(build_parser().parse_args(["fit", "--root", str(tmp_path), "--out", str(tmp_path)]))
    assert defaults.clean_sketches and defaults.test_time_flip


def test_part_pooling_reaches_the_manifest_and_search(tmp_path, pku_root):
    """--parts N pools N stripes into an N times longer embedding, and the exported checkpoint
    rebuilds it; photos keep their colour, sketches are grey. Bad values are refused."""
    from training.cli import build_parser, fit_config

    out = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "--root",
                str(pku_root),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--crop-min",
                "1",
                "--pad",
                "0",
                "--parts",
                "2",
                *TINY,
            ]
        )
        == 0
    )
    manifest = read_manifest(out / "model")
    assert manifest.parts == 2 and manifest.embedding_dim == 2 * 1280
    assert not manifest.preprocess[Modality.PHOTO].greyscale and manifest.preprocess[Modality.SKETCH].greyscale
    photo = next(r for r in pku_sketch(pku_root, 1).test if r.modality is Modality.PHOTO)
    rgb = load_rgb(photo.path)
    grey = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    colour_vector, grey_vector = (
        InferenceModel(out / "model", "cpu").embed_images([rgb, grey], Modality.PHOTO).embeddings
    )
    assert colour_vector.shape == (2 * 1280,) and np.isfinite(colour_vector).all()
    assert float(colour_vector @ grey_vector) < 0.9999  # colour reaches the photo encoder

    for bad in (
        ["--crop-min", "0"],
        ["--crop-min", "1.5"],
        ["--pad", "-0.1"],
        ["--parts", "0"],
    ):
        args = build_parser().parse_args(["fit", "--root", str(pku_root), "--out", str(out), *bad])
        with pytest.raises(ValueError):
            fit_config(args).check()


def test_grid_at_stride_16_reaches_the_manifest_and_search(tmp_path, pku_root):
    """--feature-stride 16 --parts R --part-columns C trains the cut backbone with an R x C grid,
    and the exported checkpoint embeds through the search path at that length."""
    from training.cli import build_parser, fit_config

    out = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "--root",
                str(pku_root),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--feature-stride",
                "16",
                "--parts",
                "2",
                "--part-columns",
                "2",
                *TINY,
            ]
        )
        == 0
    )
    manifest = read_manifest(out / "model")
    assert (manifest.feature_stride, manifest.parts, manifest.part_columns) == (16, 2, 2)
    assert manifest.embedding_dim == 112 * 2 * 2
    photo = next(r for r in pku_sketch(pku_root, 1).test if r.modality is Modality.PHOTO)
    (vector,) = InferenceModel(out / "model", "cpu").embed_images([load_rgb(photo.path)], Modality.PHOTO).embeddings
    assert vector.shape == (448,) and np.isfinite(vector).all()

    for bad in (["--feature-stride", "4"], ["--part-columns", "0"]):
        args = build_parser().parse_args(["fit", "--root", str(pku_root), "--out", str(out), *bad])
        with pytest.raises(ValueError):
            fit_config(args).check()


def test_co_training_with_a_reid_source_its_own_classifier_and_an_osnet_teacher(tmp_path, pku_root):
    teacher = pku_root.parent / "osnet" / "osnet_x0_25_msmt17.safetensors"
    if not teacher.is_file():
        pytest.skip(f"OSNet weights not found at {teacher}")
    source = tmp_path / "agency"
    for pid in range(5):
        for cam in "ab":
            for k in range(2):
                write_image(source / f"{pid:04d}_{cam}_{k:02d}.jpg", 100 * pid + 10 * ord(cam) + k)
    out = tmp_path / "run"
    argv = ["fit", "--root", str(pku_root), "--out", str(out), "--epochs", "1", *TINY, "--p", "3"]
    argv += ["--source", "reid", "--source-root", str(source), "--source-share", "0.34", "--source-classifier"]
    argv += ["--source-epochs", "1", "--w-teacher", "1", "--teacher", str(teacher)]
    assert main(argv) == 0
    source_phase, co_train = csv.DictReader(open(out / "log.csv"))
    # source-only pre-training: the source people through their own classifier, no target terms
    assert float(source_phase["source_identity"]) > 0 and source_phase["identity"] == ""
    assert source_phase["domain"] == "" and float(source_phase["teacher"]) > 0
    # co-training: both classifiers, the domain term, MATHM and the teacher
    for loss in ("identity", "source_identity", "domain", "mathm", "teacher"):
        assert float(co_train[loss]) > 0, loss
    state = torch.load(out / "state.pt", weights_only=True)
    target_people = 6 - 2  # --limit-identities 6, 2 of them carved for validation
    assert state["classifier"]["weight"].shape[0] == target_people
    assert state["source_classifier"]["weight"].shape[0] == 5
    assert not any(k.startswith("teacher") for k in state["network"])  # the teacher is not part of the model
    provenance = read_manifest(out / "model").provenance
    assert provenance["data"]["source"] == "reid" and provenance["data"]["source_images"] == 20
    assert provenance["data"]["source_identities"] == 5
    assert provenance["config"]["source_classifier"] and provenance["config"]["teacher"] == str(teacher)

    # co-training alone, one classifier over everyone (the earlier recipe): no source_identity term
    alone = tmp_path / "alone"
    argv = ["fit", "--root", str(pku_root), "--out", str(alone), "--epochs", "1", *TINY, "--p", "3"]
    assert main([*argv, "--source", "reid", "--source-root", str(source), "--source-share", "0.34"]) == 0
    (row,) = csv.DictReader(open(alone / "log.csv"))
    assert row["phase"] == "co-train" and float(row["identity"]) > 0 and row["source_identity"] == ""
    assert torch.load(alone / "state.pt", weights_only=True)["classifier"]["weight"].shape[0] == target_people + 5
    # the teacher loss without a teacher is a one-line error
    assert main([*argv, "--out", str(tmp_path / "x"), "--w-teacher", "1"]) == 2


def test_benchmark_trains_and_measures_both_galleries_and_keeps_its_source_apart(tmp_path, pku_root, capsys):
    source, others = tmp_path / "agency", tmp_path / "others"
    for pid in range(4):
        for cam in "ab":
            write_image(source / f"{pid:04d}_{cam}_00.jpg", 10 * pid + ord(cam))
            write_image(others / f"{pid + 100:04d}_{cam}_00.jpg", 7 * pid + ord(cam))
    argv = ["benchmark", "pku", "--root", str(pku_root), "--out", str(tmp_path / "bench"), "--splits", "1"]
    argv += ["--epochs", "1", *TINY, "--p", "3", "--source", "reid", "--source-root", str(source)]
    argv += ["--source-share", "0.34", "--source-classifier"]
    # the same people as source and as distractors: refused before any training
    assert main([*argv, "--distractors", str(source)]) == 2
    assert "the training source and the distractors share 4 identities (agency/0000" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()
    # a folder named twice counts once
    assert main([*argv, "--distractors", str(others), str(source.parent / "others"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    split = result["splits"]["1"]
    assert split["gallery"] == 12 and split["large_gallery"]["gallery"] == 12 + 8  # 6 test people, 2 photos each
    recorded = read_manifest(tmp_path / "bench" / "split-1" / "model").provenance["metrics"]["test"]
    assert {k: split[k] for k in ("R1", "R10", "mAP")} == {k: recorded[k] for k in ("R1", "R10", "mAP")}
    assert all(split["large_gallery"][k] <= split[k] for k in ("R1", "R5", "R10", "R20", "mAP"))
    assert {"R1", "large R1", "large mAP"} <= set(result["summary"])
