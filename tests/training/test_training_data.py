"""Loaders on the real PKU-Sketch / CUFS / Market-1501 attribute data, and the training Dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from training_test_helpers import MARKET_IDS, write_image

from core.common.imaging import load_rgb
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.network import Modality
from core.model.preprocess import PreprocessConfig, preprocess, resize_rgb
from training.data import (
    DataError,
    ImageRecord,
    by_modality,
    cufs,
    identities,
    market1501,
    paired_folder,
    pku_sketch,
    pseudo_sketches,
    read_market_attributes,
    split_identities,
)
from training.dataset import (
    SOURCE_PHOTO,
    TARGET_PHOTO,
    TARGET_SKETCH,
    Augmentation,
    TrainingImages,
    pencil_sketch,
)


def test_pku_split_1(pku_root):
    split = pku_sketch(pku_root, 1)
    train_ids = {r.identity for r in split.train}
    test_ids = {r.identity for r in split.test}
    assert len(train_ids) == 150 and len(test_ids) == 50 and not train_ids & test_ids
    lost = {"160", "168", "169"}
    for records in (split.train, split.test):
        sketch_ids = {r.identity for r in by_modality(records, Modality.SKETCH)}
        assert not sketch_ids & lost
        assert all(r.path.is_file() for r in records)
    assert len(by_modality(split.train, Modality.PHOTO)) + len(by_modality(split.test, Modality.PHOTO)) == 400
    assert len(by_modality(split.train + split.test, Modality.SKETCH)) == 197
    first = next(r for r in split.train + split.test if r.identity == "1")
    assert first.attributes["gender"] == "male" and first.attributes["lower_type"] == "shorts"
    assert first.dataset == "pku"
    # each sketch carries its artist's painting style (styleAnnotation/), photos none
    sketches = by_modality(split.train + split.test, Modality.SKETCH)
    assert {r.style for r in sketches} == set("abcde")
    assert next(r for r in sketches if r.identity == "1").style == "c"  # listed in c_79.txt
    assert all(r.style is None for r in by_modality(split.train + split.test, Modality.PHOTO))


def test_pku_all_splits_disjoint(pku_root):
    for n in range(1, 11):
        split = pku_sketch(pku_root, n, attributes=False)
        assert not {r.identity for r in split.train} & {r.identity for r in split.test}
        assert all(r.attributes is None for r in split.train)
    with pytest.raises(DataError):
        pku_sketch(pku_root, 11)


def test_market_attributes_mapping(market_mat):
    table = read_market_attributes(market_mat)
    assert len(table) == 751
    for values in table.values():
        for name, value in values.items():
            PERSON_ATTRIBUTES.check(name, value)
    # identity 0002 in the .mat: age 2 (teen), backpack 1 (no), bag 1, handbag 1, upred 2, downblack 1 ...
    first = table["0002"]
    assert first["age"] == "teen" and first["backpack"] == "no" and first["bag"] == "no"
    assert first["upper_color"] == "red" and first["sleeve"] == "short"
    assert first["lower_type"] in ("trousers", "shorts")
    genders = {v["gender"] for v in table.values()}
    assert genders == {"male", "female"}
    assert "dress" not in {v.get("lower_type") for v in table.values()}  # Market's dress/skirt stays unknown


def test_market_layout(market_root):
    records = market1501(market_root)
    assert {r.identity for r in records} == set(MARKET_IDS)  # junk 0000 and -1 dropped
    assert len(records) == 3 * len(MARKET_IDS)
    assert all(r.modality is Modality.PHOTO and r.attributes for r in records)
    assert {r.camera for r in records} == {"1", "2"}


def test_cufs(cufs_root):
    records = cufs(cufs_root)
    assert len(records) == 2 * 188
    pairs = {}
    for r in records:
        pairs.setdefault(r.identity, set()).add(r.modality)
        assert r.attributes["gender"] == ("female" if r.identity[0] == "f" else "male")
    assert all(m == {Modality.PHOTO, Modality.SKETCH} for m in pairs.values())


def test_paired_folder(tmp_path):
    root = tmp_path / "mine"
    for pid in ("7", "8", "9"):
        write_image(root / "photos" / f"{pid}_a.jpg", 1)
        write_image(root / "photos" / f"{pid}_b.png", 2)
        write_image(root / "sketches" / f"{pid}.jpg", 3)
    (root / "attributes.csv").write_text("id,gender,hat,unrelated\n7,female,,x\n8,male,yes,y\n")
    records = paired_folder(root)
    assert len(records) == 9
    assert {r.identity for r in by_modality(records, Modality.SKETCH)} == {"7", "8", "9"}
    by_id = {r.identity: r.attributes for r in records}
    assert by_id["7"] == {"gender": "female"} and by_id["8"] == {"gender": "male", "hat": "yes"} and by_id["9"] is None
    (root / "attributes.csv").write_text("id,gender\n7,robot\n")
    with pytest.raises(DataError):
        paired_folder(root)


def test_split_identities_seeded_and_disjoint(pku_root):
    train = pku_sketch(pku_root, 1).train
    rest, carved = split_identities(train, 15, seed=3)
    rest2, carved2 = split_identities(train, 15, seed=3)
    assert identities(carved) == identities(carved2)
    assert len(identities(carved)) == 15 and not set(identities(rest)) & set(identities(carved))
    assert len(rest) + len(carved) == len(train)
    for key in identities(carved):  # validation identities can be queried sketch -> photo
        assert {r.modality for r in carved if r.key == key} == {Modality.PHOTO, Modality.SKETCH}
    _, other = split_identities(train, 15, seed=4)
    assert identities(other) != identities(carved)


def test_dataset_plain_preprocessing_is_core(pku_root):
    records = pku_sketch(pku_root, 1).test[:2] + by_modality(pku_sketch(pku_root, 1).test, Modality.SKETCH)[:1]
    configs = {Modality.PHOTO: PreprocessConfig(64, 32), Modality.SKETCH: PreprocessConfig(64, 32, greyscale=True)}
    data = TrainingImages(records, [0, 0, 1], configs, PERSON_ATTRIBUTES)
    for i, record in enumerate(records):
        item = data[i]
        expected = preprocess(load_rgb(record.path), configs[record.modality])
        assert np.array_equal(item["image"].numpy(), expected)
        assert item["domain"].item() == (TARGET_SKETCH if record.modality is Modality.SKETCH else TARGET_PHOTO)
        assert item["attributes"].shape == (len(PERSON_ATTRIBUTES.names),)
        assert (item["attributes"] >= 0).all()  # PKU labels every attribute


def test_dataset_augmentation(pku_root, market_root):
    photo = by_modality(pku_sketch(pku_root, 1).test, Modality.PHOTO)[0]
    source = market1501(market_root)[0]
    configs = {Modality.PHOTO: PreprocessConfig(64, 32), Modality.SKETCH: PreprocessConfig(64, 32, greyscale=True)}
    data = TrainingImages(
        [photo, source], [0, 1], configs, PERSON_ATTRIBUTES, source=[False, True], augmentation=Augmentation(), seed=1
    )
    a, b = data[0]["image"], data[0]["image"]
    assert a.shape == (3, 64, 32) and a.dtype.is_floating_point
    assert np.array_equal(a.numpy(), b.numpy())  # seeded per (seed, epoch, index)
    data.set_epoch(1)
    assert not np.array_equal(a.numpy(), data[0]["image"].numpy())
    assert data[1]["domain"].item() == SOURCE_PHOTO
    targets = data[1]["attributes"]
    assert (targets >= -1).all() and (targets >= 0).any()


def test_pseudo_sketches_are_pencil_renderings_of_the_photos(pku_root):
    train = pku_sketch(pku_root, 1).train
    pseudo = pseudo_sketches(train)
    photos = by_modality(train, Modality.PHOTO)
    assert len(pseudo) == len(photos)
    assert all(p.pseudo_sketch and p.modality is Modality.SKETCH for p in pseudo)
    assert [(p.path, p.key, p.attributes) for p in pseudo] == [(r.path, r.key, r.attributes) for r in photos]

    rgb = load_rgb(photos[0].path)
    drawn = pencil_sketch(rgb)
    assert drawn.dtype == np.uint8 and drawn.ndim == 3 and drawn.shape[2] == 3
    assert (
        drawn.shape[0] == max(512, rgb.shape[0])
        and abs(drawn.shape[1] / drawn.shape[0] - rgb.shape[1] / rgb.shape[0]) < 0.01
    )
    assert (drawn[..., 0] == drawn[..., 1]).all() and (drawn[..., 1] == drawn[..., 2]).all()  # grey, like a sketch
    # lighter than the photo overall, with dark strokes along its edges
    assert drawn.mean() > rgb.mean() and (drawn[..., 0] < 60).mean() > 0.005

    configs = {Modality.PHOTO: PreprocessConfig(64, 32), Modality.SKETCH: PreprocessConfig(64, 32, greyscale=True)}
    data = TrainingImages([photos[0], pseudo[0]], [0, 0], configs, PERSON_ATTRIBUTES)
    item = data[1]
    assert item["modality"].item() == 1 and item["domain"].item() == TARGET_SKETCH
    assert np.array_equal(item["image"].numpy(), preprocess(drawn, configs[Modality.SKETCH]))
    assert not np.array_equal(item["image"].numpy(), preprocess(rgb, configs[Modality.SKETCH]))


def test_augmentation_without_crop_or_pad_only_mirrors(pku_root):
    """Aligned images (faces) can be trained without the random crop and border: what is left is
    the mirror image, half the time."""
    photo = by_modality(pku_sketch(pku_root, 1).test, Modality.PHOTO)[0]
    configs = {Modality.PHOTO: PreprocessConfig(64, 32), Modality.SKETCH: PreprocessConfig(64, 32, greyscale=True)}
    data = TrainingImages(
        [photo],
        [0],
        configs,
        PERSON_ATTRIBUTES,
        seed=3,
        augmentation=Augmentation(crop_scale=(1.0, 1.0), pad=0.0, jitter=0.0),
    )
    rgb = load_rgb(photo.path)
    plain, mirrored = preprocess(rgb, configs[Modality.PHOTO]), preprocess(rgb[:, ::-1].copy(), configs[Modality.PHOTO])
    seen = set()
    for epoch in range(8):
        data.set_epoch(epoch)
        image = data[0]["image"].numpy()
        is_plain, is_mirrored = np.array_equal(image, plain), np.array_equal(image, mirrored)
        assert is_plain or is_mirrored, epoch
        seen.add(is_plain)
    assert seen == {True, False}


def test_training_reads_images_upright_as_search_does(tmp_path):
    """A phone photo stored sideways with an EXIF orientation tag trains upright: the training
    loader decodes through core.common.imaging, the same decoder the gallery import uses."""
    upright = np.zeros((80, 40, 3), np.uint8)
    upright[:20] = (255, 0, 0)  # a red head at the top of a tall figure
    upright[20:] = (0, 0, 255)
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # stored lying on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "phone.jpg"
    sideways.save(path, quality=95, exif=exif)

    config = PreprocessConfig(80, 40)
    record = ImageRecord(path=path, identity="1", modality=Modality.PHOTO)
    item = TrainingImages([record], [0], {Modality.PHOTO: config}, PERSON_ATTRIBUTES)[0]
    assert np.array_equal(item["image"].numpy(), preprocess(load_rgb(path), config))
    pixels = np.asarray(resize_rgb(load_rgb(path), config), np.int16)
    assert pixels.shape == (80, 40, 3)
    top, bottom = pixels[:15].mean((0, 1)), pixels[30:].mean((0, 1))
    assert top[0] > 200 and top[2] < 60, top  # red at the top: the tag was applied
    assert bottom[2] > 200 and bottom[0] < 60, bottom
