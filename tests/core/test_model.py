"""The network definition, its ImageNet initialisation, preprocessing and the checkpoint format."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from core.common.errors import CheckpointError
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.backbones import (
    backbone_spec,
    build_efficientnet_lite0,
    load_efficientnet_lite0_imagenet,
)
from core.model.checkpoint import MANIFEST_FILE, WEIGHTS_FILE, Manifest, load_checkpoint, read_manifest, save_checkpoint
from core.model.inference import InferenceModel
from core.model.network import Modality, SketchPhotoNet
from core.model.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, preprocess

CLOTHING = {
    "jean",
    "miniskirt",
    "sweatshirt",
    "jersey",
    "cardigan",
    "suit",
    "trench coat",
    "backpack",
    "abaya",
    "fur coat",
    "lab coat",
    "poncho",
    "pajama",
    "kimono",
    "sarong",
    "overskirt",
    "hoopskirt",
    "military uniform",
    "maillot",
    "maillot tank suit",
    "swimming trunks",
    "stole",
    "cloak",
    "apron",
    "sock",
    "T-shirt",
    "cowboy boot",
    "running shoe",
    "sandal",
    "Loafer",
    "clog",
    "purse",
    "mailbag",
    "umbrella",
    "sunglasses",
    "sunglass",
    "wig",
    "bow tie",
    "Windsor tie",
    "vestment",
    "academic gown",
    "gown",
    "bikini",
    "knee pad",
    "mitten",
    "bonnet",
    "sombrero",
    "cowboy hat",
    "crash helmet",
    "plastic bag",
    "shopping basket",
    "bulletproof vest",
    "neck brace",
    "mortarboard",
    "ballplayer",
}


def test_mapped_imagenet_weights_classify_pedestrians_as_clothing(pku_root):
    """The key mapping is right if pedestrian photos land on clothing classes, varied as the people
    are (a wrong mapping gives noise, an untrained network one class for everything)."""
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    files = sorted((pku_root / "photo").glob("*.jpg"))[::4]
    batch = []
    for path in files:
        square = ImageOps.pad(Image.open(path).convert("RGB"), (224, 224), color=(124, 116, 104))
        batch.append(preprocess(np.asarray(square), PreprocessConfig(height=224, width=224)))
    network = build_efficientnet_lite0(num_classes=1000)
    load_efficientnet_lite0_imagenet(network)
    with torch.inference_mode():
        top5 = network.eval()(torch.from_numpy(np.stack(batch))).topk(5).indices.tolist()
    clothing = np.mean([any(categories[i] in CLOTHING for i in row) for row in top5])
    distinct_top1 = {row[0] for row in top5}
    assert clothing >= 0.85 and len(distinct_top1) >= 10, (clothing, [categories[i] for i in distinct_top1])


def test_preprocess_resizes_normalises_and_greys():
    image = np.zeros((300, 100, 3), np.uint8)
    image[..., 0] = 255  # pure red
    colour = preprocess(image, PreprocessConfig(height=64, width=32))
    assert colour.shape == (3, 64, 32) and colour.dtype == np.float32
    np.testing.assert_allclose(colour[:, 10, 10], (np.array([1.0, 0, 0]) - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)
    grey = preprocess(image, PreprocessConfig(height=64, width=32, greyscale=True))
    raw = (
        grey * np.asarray(IMAGENET_STD, np.float32)[:, None, None]
        + np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    )
    np.testing.assert_allclose(raw[0], raw[1], atol=1e-6)
    np.testing.assert_allclose(raw[0, 10, 10], 76 / 255, atol=2 / 255)  # ITU-R 601 luma of red


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path, model_dir):
    network, manifest = load_checkpoint(model_dir)
    assert network.photo.backbone.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    saved = save_checkpoint(network, manifest, tmp_path / "copy")
    assert saved.weights_sha256 != manifest.weights_sha256  # float32 now, the shipped one is float16
    images = [np.random.default_rng(i).integers(0, 255, (200, 90, 3), dtype=np.uint8) for i in range(3)]
    original = InferenceModel(model_dir, device="cpu").embed_images(images, Modality.SKETCH).embeddings
    copy = InferenceModel(tmp_path / "copy", device="cpu").embed_images(images, Modality.SKETCH).embeddings
    np.testing.assert_allclose(original, copy, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(copy, axis=1), 1.0, atol=1e-5)


def test_shipped_manifest_says_what_the_model_is(model_dir):
    manifest = read_manifest(model_dir)
    assert manifest.backbone == "efficientnet_lite0"
    assert manifest.attribute_schema == PERSON_ATTRIBUTES
    assert manifest.preprocess[Modality.SKETCH].greyscale
    if manifest.attribute_head_trained:
        for key in ("command", "data", "split", "seed", "metrics"):
            assert manifest.provenance.get(key) not in (None, ""), key
    else:
        assert "not trained" in manifest.provenance["kind"]
        assert InferenceModel(model_dir, device="cpu").embed_images(
            [np.zeros((50, 20, 3), np.uint8)], Modality.PHOTO
        ).attributes == [{}]


def test_photo_and_sketch_encoders_are_separate(inference_model):
    image = np.random.default_rng(0).integers(0, 255, (256, 128, 3), dtype=np.uint8)
    network = inference_model.network
    assert network.photo.backbone is not network.sketch.backbone
    photo = inference_model.embed_images([image], Modality.PHOTO).embeddings
    sketch = inference_model.embed_images([image], Modality.SKETCH).embeddings
    assert not np.allclose(photo, sketch)  # the sketch config greys the input first


def test_shared_backbone_ties_convolutions_and_survives_a_checkpoint(tmp_path, model_dir):
    _, manifest = load_checkpoint(model_dir)
    network = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES, embedding_dim=64, shared_backbone=True)
    separate = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES, embedding_dim=64)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731 - parameters() skips tied copies
    norms = sum(p.numel() for n, p in separate.sketch.named_parameters() if "bn" in n or "neck" in n)
    assert count(network) == count(separate) - count(separate.sketch) + norms
    with torch.no_grad():  # a shared filter changes for both encoders, a batch norm for one only
        network.photo.backbone.conv_stem.weight.mul_(2)
        network.photo.backbone.bn1.weight.mul_(3)
    assert torch.equal(network.sketch.backbone.conv_stem.weight, network.photo.backbone.conv_stem.weight)
    assert not torch.equal(network.sketch.backbone.bn1.weight, network.photo.backbone.bn1.weight)

    # the bundled model's manifest, describing this whole-backbone network instead
    shared = dataclasses.replace(
        manifest, embedding_dim=64, shared_backbone=True, parts=1, part_columns=1, feature_stride=32
    )
    save_checkpoint(network.eval(), shared, tmp_path / "shared")
    assert read_manifest(tmp_path / "shared").shared_backbone
    loaded, _ = load_checkpoint(tmp_path / "shared")
    assert loaded.sketch.backbone.conv_stem.weight is loaded.photo.backbone.conv_stem.weight
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 64, 32), dtype=np.float32))
    for modality in Modality:
        assert torch.allclose(loaded(images, modality).embedding, network(images, modality).embedding, atol=1e-6)

    # separate weights written under a shared-backbone manifest are refused, not half loaded
    save_checkpoint(separate.eval(), shared, tmp_path / "mislabelled")
    with pytest.raises(CheckpointError, match="share weights"):
        load_checkpoint(tmp_path / "mislabelled")


def test_corrupt_or_mismatched_checkpoints_are_refused(tmp_path, model_dir):
    network, manifest = load_checkpoint(model_dir)
    folder = tmp_path / "ckpt"
    save_checkpoint(network, manifest, folder)
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_checkpoint(tmp_path)
    save_checkpoint(network, manifest, folder)
    bad = json.loads((folder / MANIFEST_FILE).read_text())
    bad["embedding_dim"] = 64
    (folder / MANIFEST_FILE).write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(folder)


def test_attribute_head_predictions_when_trained(tmp_path, model_dir):
    network, manifest = load_checkpoint(model_dir)
    with torch.no_grad():  # make the head certain that everyone is female
        classifier = network.attributes.classifiers["gender"]
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([0.0, 5.0]))
    trained = manifest.__class__(**{**manifest.__dict__, "attribute_head_trained": True})
    save_checkpoint(network, trained, tmp_path / "ckpt")
    model = InferenceModel(tmp_path / "ckpt", device="cpu")
    (predicted,) = model.embed_images([np.zeros((60, 30, 3), np.uint8)], Modality.PHOTO).attributes
    assert set(predicted) == set(PERSON_ATTRIBUTES.names)
    assert predicted["gender"].value == "female" and predicted["gender"].confidence == pytest.approx(0.9933, abs=1e-3)


def test_resnet50_backbone_loads_weights_from_a_user_file(tmp_path):
    import torchvision

    from core.model.network import SketchPhotoNet, load_pretrained_backbones

    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    network = SketchPhotoNet("resnet50", PERSON_ATTRIBUTES, embedding_dim=256)
    with pytest.raises(CheckpointError, match="needs a weights file"):
        load_pretrained_backbones(network)
    (tmp_path / "wrong.pth").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="wrong.pth"):
        load_pretrained_backbones(network, tmp_path / "wrong.pth")
    load_pretrained_backbones(network, tmp_path / "resnet50.pth")
    for encoder in (network.photo, network.sketch):
        assert torch.equal(encoder.backbone.body[0].weight, reference.conv1.weight)
        assert torch.equal(encoder.backbone.body[7][2].conv3.weight, reference.layer4[2].conv3.weight)
    with torch.inference_mode():
        output = network.eval()(torch.zeros(2, 3, 256, 128), Modality.PHOTO)
    assert output.embedding.shape == (2, 256)


def test_test_time_flip_makes_an_embedding_blind_to_left_and_right(inference_model):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (256, 128, 3), dtype=np.uint8) for _ in range(3)]
    mirrors = [np.ascontiguousarray(image[:, ::-1]) for image in images]
    plain = inference_model.embed_images(images + mirrors, Modality.SKETCH).embeddings
    assert np.min(np.sum(plain[:3] * plain[3:], axis=1)) < 0.999  # the network itself is not symmetric

    flipping = InferenceModel.from_network(
        inference_model.network, dataclasses.replace(inference_model.manifest, test_time_flip=True), device="cpu"
    )
    both = flipping.embed_images(images + mirrors, Modality.SKETCH).embeddings
    np.testing.assert_allclose(both[:3], both[3:], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    # the mean of the two directions: between the image's plain embedding and its mirror's
    expected = plain[:3] + plain[3:]
    np.testing.assert_allclose(both[:3], expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)


def test_embedding_key_changes_with_anything_that_changes_an_embedding(model_dir):
    manifest = read_manifest(model_dir)
    assert manifest.embedding_key == read_manifest(model_dir).embedding_key
    flipped = dataclasses.replace(manifest, test_time_flip=not manifest.test_time_flip)
    sketch = manifest.preprocess[Modality.SKETCH]
    cleaned = dataclasses.replace(
        manifest,
        preprocess={
            **manifest.preprocess,
            Modality.SKETCH: dataclasses.replace(sketch, clean_sketch=not sketch.clean_sketch),
        },
    )
    other_weights = dataclasses.replace(manifest, weights_sha256="0" * 64)
    keys = {m.embedding_key for m in (manifest, flipped, cleaned, other_weights)}
    assert len(keys) == 4
    stored = manifest.to_json()
    del stored["test_time_flip"]  # as written before the option existed
    assert Manifest.from_json(stored).test_time_flip is False


def test_part_pooling_concatenates_stripe_means_and_survives_a_checkpoint(tmp_path, model_dir):
    _, manifest = load_checkpoint(model_dir)
    network = SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES, parts=3).eval()
    assert network.embedding_dim == 3 * 1280
    images = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 96, 32), dtype=np.float32))
    with torch.no_grad():
        feature_map = network.photo.backbone(images)  # 2 x 1280 x 3 x 1: one row per stripe here
        assert feature_map.shape[2] == 3
        stripes = [feature_map[:, :, row].mean(dim=2) for row in range(3)]
        expected = torch.stack(stripes, dim=2).flatten(1)  # channel-major, as the pool flattens
        assert torch.allclose(network(images, Modality.PHOTO).feature, expected, atol=1e-5)

    parted = dataclasses.replace(
        manifest, embedding_dim=network.embedding_dim, shared_backbone=False, parts=3, part_columns=1, feature_stride=32
    )
    save_checkpoint(network, parted, tmp_path / "parts")
    loaded, loaded_manifest = load_checkpoint(tmp_path / "parts")
    assert loaded_manifest.parts == 3 and loaded.parts == 3
    with torch.no_grad():
        for modality in Modality:
            assert torch.allclose(loaded(images, modality).embedding, network(images, modality).embedding, atol=1e-5)
    with pytest.raises(ValueError, match="parts"):
        SketchPhotoNet("efficientnet_lite0", PERSON_ATTRIBUTES, parts=0)


def _assert_round_trip(network, manifest, folder, images) -> tuple[SketchPhotoNet, Manifest]:
    """Save, load from the manifest alone, and check both encoders embed as before."""
    save_checkpoint(network, manifest, folder)
    loaded, loaded_manifest = load_checkpoint(folder)
    with torch.no_grad():
        for modality in Modality:
            assert torch.allclose(loaded(images, modality).embedding, network(images, modality).embedding, atol=1e-5)
    return loaded, loaded_manifest


def test_backbone_cut_at_stride_16_is_the_full_network_s_stage_with_imagenet_weights():
    """The cut backbone computes exactly the full ImageNet network's stride-16 stage (same weights,
    nothing re-initialised), and so loads the same weights file."""
    spec = backbone_spec("efficientnet_lite0")
    full, cut = spec.build(32), spec.build(16)
    for network in (full, cut):
        spec.load_pretrained(network, None)
    images = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, 64, 48), dtype=np.float32))
    with torch.no_grad():
        expected = full.eval().forward_intermediates(images, indices=[3], intermediates_only=True)[0]
        got = cut.eval()(images)
    assert got.shape == (2, spec.feature_dim(16), 4, 3)
    assert torch.allclose(got, expected, atol=1e-5)
    with pytest.raises(ValueError, match="stride 4"):
        spec.feature_dim(4)


def test_grid_pooling_at_stride_16_keeps_each_cell_and_survives_a_checkpoint(tmp_path, model_dir):
    """A parts x part_columns grid of stride-16 features (the face layout): each cell's channel means
    side by side, rebuilt from the manifest alone; a manifest written before the grid existed
    reads as the whole backbone pooled once."""
    _, manifest = load_checkpoint(model_dir)
    network = SketchPhotoNet(
        "efficientnet_lite0", PERSON_ATTRIBUTES, shared_backbone=True, parts=2, part_columns=3, feature_stride=16
    ).eval()
    assert network.embedding_dim == 112 * 2 * 3
    images = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 3, 64, 96), dtype=np.float32))
    with torch.no_grad():
        feature_map = network.sketch.backbone(images)  # 2 x 112 x 4 x 6: each cell 2 x 2
        cells = [
            feature_map[:, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean(dim=(2, 3)) for r in range(2) for c in range(3)
        ]
        expected = torch.stack(cells, dim=2).flatten(1)  # channel-major, row-major cells
        assert torch.allclose(network(images, Modality.SKETCH).feature, expected, atol=1e-5)

    gridded = dataclasses.replace(
        manifest, embedding_dim=network.embedding_dim, shared_backbone=True, parts=2, part_columns=3, feature_stride=16
    )
    _, loaded_manifest = _assert_round_trip(network, gridded, tmp_path / "grid", images)
    assert (loaded_manifest.parts, loaded_manifest.part_columns, loaded_manifest.feature_stride) == (2, 3, 16)
    older = manifest.to_json()
    for key in ("parts", "part_columns", "feature_stride"):
        del older[key]
    assert (
        Manifest.from_json(older).parts,
        Manifest.from_json(older).part_columns,
        Manifest.from_json(older).feature_stride,
    ) == (1, 1, 32)


def test_a_manifest_of_a_removed_backbone_layout_is_refused_with_a_reason(model_dir):
    data = read_manifest(model_dir).to_json()
    data["dilated"] = True
    with pytest.raises(CheckpointError, match="dilated"):
        Manifest.from_json(data)


def test_a_model_folder_from_before_per_modality_early_stages_were_removed_still_loads(tmp_path, model_dir):
    folder = tmp_path / "earlier"
    shutil.copytree(model_dir, folder)
    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    data["separate_early_stages"] = 0  # what earlier versions wrote for every ordinary model
    (folder / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")
    network, manifest = load_checkpoint(folder)
    shipped, _ = load_checkpoint(model_dir)
    assert manifest.to_json() == read_manifest(model_dir).to_json()
    assert all(torch.equal(tensor, shipped.state_dict()[key]) for key, tensor in network.state_dict().items())
    # a model that kept early stages per modality is a network this version cannot build
    for separate in (2, True, "2"):
        with pytest.raises(CheckpointError, match="separate_early_stages.*no longer supported"):
            Manifest.from_json({**data, "shared_backbone": True, "separate_early_stages": separate})


def test_licence_and_data_terms_travel_with_the_manifest(tmp_path, model_dir):
    shipped = read_manifest(model_dir)
    assert "research use" in shipped.licence and "PKU-Sketch" in shipped.data_terms
    network, manifest = load_checkpoint(model_dir)
    saved = save_checkpoint(network, manifest, tmp_path / "copy")
    assert (saved.licence, saved.data_terms) == (shipped.licence, shipped.data_terms)
    assert read_manifest(tmp_path / "copy").data_terms == shipped.data_terms
