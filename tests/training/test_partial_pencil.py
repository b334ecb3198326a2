"""The photo-to-pencil augmentation (KTCAA): the per-channel colour dodge, its whole-image / one
rectangle / unchanged draws, and its place in the training Dataset (target photos only)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from training_test_helpers import write_image

from core.common.imaging import load_rgb
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.network import Modality
from core.model.preprocess import PreprocessConfig, normalise, prepare
from training.augment import PartialPencil, choose_pencil, partial_pencil, pencil_dodge, random_rectangle
from training.config import ConfigError, FitConfig
from training.data import ImageRecord
from training.dataset import Augmentation, TrainingImages, augment_uint8


def noise_image(seed: int = 0, height: int = 48, width: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def reference_dodge(image: np.ndarray, kernel: int) -> np.ndarray:
    """The dodge written out pixel by pixel: each channel's inverse blurred on its own, then
    min(255, image * 255 / (255 - blur)), a zero divisor giving paper white."""
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        blur = cv2.GaussianBlur(255 - image[:, :, c], (kernel, kernel), 0)
        for y in range(image.shape[0]):
            for x in range(image.shape[1]):
                value, divisor = int(image[y, x, c]), 255 - int(blur[y, x])
                out[y, x, c] = 255 if divisor == 0 else min(255, value * 255 // divisor)
    return out


def test_dodge_matches_a_per_channel_reference_loop():
    image = noise_image(1, 12, 9)
    image[:4, :4] = 0  # a black patch: the divisor reaches zero at its centre
    for kernel in (3, 5):
        dodged = pencil_dodge(image, kernel)
        assert dodged.dtype == np.uint8 and dodged.shape == image.shape
        assert np.array_equal(dodged, reference_dodge(image, kernel))
    # channels are dodged independently: a colour image stays a colour image
    assert not np.array_equal(dodged[..., 0], dodged[..., 1])


def test_dodge_lightens_and_keeps_uint8_range():
    image = noise_image(2)
    for kernel in (17, 27):
        dodged = pencil_dodge(image, kernel)
        assert dodged.dtype == np.uint8 and dodged.min() >= 0 and dodged.max() <= 255
        assert (dodged >= image).all()  # 255 / (255 - blur) is at least 1
    flat = np.full((20, 10, 3), 90, np.uint8)
    assert (pencil_dodge(flat, 17) == 255).all()  # a uniform area turns to paper, only edges stay drawn


def test_random_rectangle_stays_inside_and_within_its_side_fractions():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, bottom, right = random_rectangle(100, 50, rng)
        assert 0 <= top < bottom <= 100 and 0 <= left < right <= 50
        assert 20 <= bottom - top <= 80 and 10 <= right - left <= 40


def test_whole_region_and_none_are_drawn_in_their_proportions():
    settings = PartialPencil()
    assert (settings.whole, settings.whole_kernel, settings.region, settings.region_kernel) == (0.05, 27, 0.45, 17)
    rng = np.random.default_rng(7)
    draws = 20000
    kinds = [choose_pencil(settings, 64, 32, rng) for _ in range(draws)]
    whole = sum(1 for k in kinds if k is not None and k.kernel == 27) / draws
    region = sum(1 for k in kinds if k is not None and k.kernel == 17) / draws
    none = sum(1 for k in kinds if k is None) / draws
    # three standard errors of a proportion over 20,000 draws: under 0.011
    assert whole == pytest.approx(0.05, abs=0.01)
    assert region == pytest.approx(0.45, abs=0.011)
    assert none == pytest.approx(0.5, abs=0.011)
    assert all(k.box == (0, 0, 64, 32) for k in kinds if k is not None and k.kernel == 27)


def test_applied_draws_change_the_whole_image_one_rectangle_or_nothing():
    image = noise_image(3, 64, 32)
    settings = PartialPencil()
    seen = set()
    for seed in range(200):
        choice = choose_pencil(settings, 64, 32, np.random.default_rng(seed))
        out = partial_pencil(image, settings, np.random.default_rng(seed))  # the same draw
        assert out.dtype == np.uint8 and out.shape == image.shape
        if choice is None:
            assert np.array_equal(out, image)
            seen.add("none")
            continue
        top, left, bottom, right = choice.box
        dodged = pencil_dodge(image, choice.kernel)
        assert np.array_equal(out[top:bottom, left:right], dodged[top:bottom, left:right])
        outside = np.ones(image.shape[:2], bool)
        outside[top:bottom, left:right] = False
        assert np.array_equal(out[outside], image[outside])  # nothing changes outside the one rectangle
        changed = (out != image).any(axis=2)
        rows, columns = np.nonzero(changed)
        assert top <= rows.min() and rows.max() < bottom and left <= columns.min() and columns.max() < right
        seen.add("whole" if choice.kernel == 27 else "region")
    assert seen == {"whole", "region", "none"}


def test_probabilities_are_checked():
    with pytest.raises(ValueError):
        PartialPencil(whole=0.6, region=0.5)
    with pytest.raises(ValueError):
        PartialPencil(region_kernel=16)  # a Gaussian kernel has a centre: odd sizes only
    root = {"out": "o", "root": "r"}
    FitConfig(**root, partial_pencil=True).check()
    with pytest.raises(ConfigError, match="pencil"):
        FitConfig(**root, partial_pencil=True, pencil_whole=0.7, pencil_region=0.45).check()
    with pytest.raises(ConfigError, match="pencil"):
        FitConfig(**root, partial_pencil=True, pencil_whole_kernel=0).check()


# ------------------------------------------------------------------------------ the training Dataset

CONFIGS = {Modality.PHOTO: PreprocessConfig(64, 32), Modality.SKETCH: PreprocessConfig(64, 32, greyscale=True)}


@pytest.fixture
def records(tmp_path):
    """A target photo, a target sketch and a source photo, written as generated images."""
    return [
        ImageRecord(write_image(tmp_path / "photo.png", 0), "1", Modality.PHOTO, dataset="t"),
        ImageRecord(write_image(tmp_path / "sketch.png", 1), "1", Modality.SKETCH, dataset="t"),
        ImageRecord(write_image(tmp_path / "source.png", 2), "9", Modality.PHOTO, dataset="s"),
    ]


def images(records, augmentation: Augmentation, epochs: range) -> list[list[np.ndarray]]:
    data = TrainingImages(
        records, [0, 0, 1], CONFIGS, PERSON_ATTRIBUTES, source=[False, False, True], augmentation=augmentation, seed=5
    )
    out = []
    for epoch in epochs:
        data.set_epoch(epoch)
        out.append([data[i]["image"].numpy() for i in range(len(records))])
    return out


def test_without_the_option_the_pipeline_is_the_one_before(records):
    """Off, every image is decode -> prepare -> augment_uint8 -> normalise under the (seed, epoch,
    index) generator, exactly as before the option existed."""
    augmentation = Augmentation()
    assert augmentation.pencil is None and FitConfig(out="o", root="r").partial_pencil is False
    for epoch, items in enumerate(images(records, augmentation, range(3))):
        for index, (record, got) in enumerate(zip(records, items)):
            config = CONFIGS[record.modality]
            rng = np.random.default_rng([5, epoch, index])
            expected = augment_uint8(prepare(load_rgb(record.path), config), config, record.modality, augmentation, rng)
            assert np.array_equal(got, normalise(expected, config))


def test_the_option_pencils_target_photos_only_and_keeps_their_label(records):
    off = images(records, Augmentation(), range(40))
    on = images(records, Augmentation(pencil=PartialPencil()), range(40))
    changed = [not np.array_equal(a[0], b[0]) for a, b in zip(off, on)]
    # the pencil is drawn after the other augmentations: an undrawn photo is the photo as before
    assert 5 < sum(changed) < 35
    for a, b in zip(off, on):
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])  # sketch, source photo
    data = TrainingImages(
        records,
        [0, 0, 1],
        CONFIGS,
        PERSON_ATTRIBUTES,
        source=[False, False, True],
        augmentation=Augmentation(pencil=PartialPencil(whole=1.0, region=0.0)),
        seed=5,
    )
    item = data[0]
    assert item["modality"].item() == 0 and item["label"].item() == 0  # still a photo of its person
    assert np.array_equal(item["image"].numpy(), data[0]["image"].numpy())  # seeded: reproducible
