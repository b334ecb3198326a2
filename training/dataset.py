"""The training Dataset: decode, augment, then the one preprocessing path of ``core``.

Augmentation acts on the uint8 image after core's content step (:func:`core.model.preprocess.prepare`,
the sketch clean-up): crop/pad and flip before resizing, colour jitter after; the final tensor
always comes through :func:`core.model.preprocess.resize_rgb` and
:func:`~core.model.preprocess.normalise` with the config the checkpoint will record, so training
and search see identically prepared inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.model.attributes import AttributeSchema
from core.model.network import Modality
from core.model.preprocess import PreprocessConfig, normalise, prepare, resize_rgb
from training.data import ImageRecord, read_rgb

MODALITY_INDEX = {Modality.PHOTO: 0, Modality.SKETCH: 1}
# Domain classes of the adversarial head.
SOURCE_PHOTO, TARGET_PHOTO, TARGET_SKETCH = 0, 1, 2
UNKNOWN = -1


@dataclass(frozen=True)
class Augmentation:
    flip: float = 0.5  # probability of a horizontal flip
    crop_scale: tuple[float, float] = (0.85, 1.0)  # side fraction kept by the random crop
    pad: float = 0.05  # at most this fraction of each side added as border (before the crop)
    jitter: float = 0.2  # photo brightness/contrast/saturation jitter strength (0: none)
    grey_photos: float = 0.0  # probability of turning a photo grey (colour is absent from sketches)
    erase: float = 0.0  # probability of random erasing (one rectangle, 2-20 % of the area)
    hatched: float = 0.0  # probability that a pseudo-sketch is drawn hatched rather than in pencil
    sketch_style: float = 0.0  # probability of redrawing a sketch in another hand (see restyle_sketch)


def augment_uint8(
    image: np.ndarray, config: PreprocessConfig, modality: Modality, aug: Augmentation, rng: np.random.Generator
) -> np.ndarray:
    """Random pad + crop + flip on the decoded image, resize through ``resize_rgb``, then colour
    jitter (photos only). Returns HxWx3 uint8 at the config's input size."""
    h, w = image.shape[:2]
    if aug.pad > 0:
        py, px = int(round(h * aug.pad * rng.random())), int(round(w * aug.pad * rng.random()))
        if py or px:
            fill = 255 if modality is Modality.SKETCH else 0  # sketches are drawn on white
            image = np.pad(image, ((py, py), (px, px), (0, 0)), constant_values=fill)
            h, w = image.shape[:2]
    lo, hi = aug.crop_scale
    if hi > lo or lo < 1:
        scale = rng.uniform(lo, hi)
        ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = image[y : y + ch, x : x + cw]
    if rng.random() < aug.flip:
        image = image[:, ::-1]
    out = resize_rgb(np.ascontiguousarray(image), config)
    if modality is Modality.PHOTO and aug.jitter > 0:
        out = colour_jitter(out, aug.jitter, rng)
    if modality is Modality.PHOTO and aug.grey_photos > 0 and rng.random() < aug.grey_photos:
        out = np.repeat(out.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    if modality is Modality.SKETCH and aug.sketch_style > 0 and rng.random() < aug.sketch_style:
        out = restyle_sketch(out, rng)
    if aug.erase > 0 and rng.random() < aug.erase:
        out = random_erase(out, rng)
    return out


def restyle_sketch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same drawing as another artist might have made it: heavier or lighter strokes (a grey
    erosion or dilation of the ink), darker or paler shading (a gamma on the tones), a softer
    pencil (a slight blur) and slimmer or broader proportions (a horizontal stretch about the
    centre, the frame kept). PKU-Sketch's five artists differ in these ways, and one of them drew
    only 20 of its 200 people, so a model sees few examples of some hands. Returns an image of the
    same size."""
    h, w = image.shape[:2]
    out = image
    weight = int(rng.integers(-1, 2))  # -1 lighter strokes, 0 as drawn, 1 heavier
    if weight:
        kernel = np.ones((2, 2), np.uint8)
        # ink is dark on white paper: eroding the grey levels widens the dark strokes
        out = cv2.erode(out, kernel) if weight > 0 else cv2.dilate(out, kernel)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    out = (255.0 * (out.astype(np.float32) / 255.0) ** gamma).astype(np.uint8)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    stretch = rng.uniform(0.85, 1.15)
    matrix = np.float32([[stretch, 0, (1 - stretch) * w / 2], [0, 1, 0]])
    out = cv2.warpAffine(out, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    return out


def _grey_for_drawing(image: np.ndarray) -> np.ndarray:
    """Float greyscale in [0, 1] at twice the re-ID input height at least, where outlines are clean."""
    height, width = image.shape[:2]
    if height < 512:
        image = cv2.resize(image, (round(width * 512 / height), 512), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _outlines(grey: np.ndarray) -> np.ndarray:
    """XDoG outlines (Winnemoeller et al. 2012): 1 on paper, towards 0 on a drawn edge."""
    fine, coarse = cv2.GaussianBlur(grey, (0, 0), 1.6), cv2.GaussianBlur(grey, (0, 0), 1.6 * 1.6)
    difference = fine - 0.98 * coarse
    return np.where(difference >= -0.02, 1.0, 1.0 + np.tanh(60.0 * (difference + 0.02)))


def _to_rgb(drawn: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(drawn, 0.0, 1.0) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def pencil_sketch(image: np.ndarray) -> np.ndarray:
    """An RGB photo drawn as a pencil sketch: XDoG outlines over the lightened grey tones.
    PKU-Sketch drawings are shaded, so outlines alone look less like them than outlines with tone."""
    grey = _grey_for_drawing(image)
    return _to_rgb(np.minimum(_outlines(grey), 0.35 + 0.65 * grey**0.6))


def hatched_sketch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB photo drawn in ink on white paper: XDoG outlines, dark areas hatched with parallel
    strokes and the darkest cross-hatched, mid and light tones (skin, a grey road) left white.
    One of PKU-Sketch's five artists draws clothes this way, which the pencil rendering's grey
    tones resemble least. Stroke angle and spacing are drawn from ``rng``."""
    grey = _grey_for_drawing(image)
    darkness = 1.0 - cv2.GaussianBlur(grey, (0, 0), 2.0)
    angle, spacing = np.deg2rad(rng.uniform(40.0, 80.0)), rng.uniform(5.0, 7.0)
    y, x = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]].astype(np.float32)

    def strokes(theta: float, cover: np.ndarray) -> np.ndarray:
        # A cosine wave across the stroke direction, inked where it falls below ``cover``: the
        # darker the area, the wider each stroke.
        wave = 0.5 + 0.5 * np.cos(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / spacing)
        return np.clip((cover - wave) / 0.1, 0.0, 1.0)

    hatch = strokes(angle, 0.6 * np.clip((darkness - 0.5) / 0.4, 0.0, 1.0))
    cross = strokes(angle + np.pi / 2, 0.5 * np.clip((darkness - 0.7) / 0.25, 0.0, 1.0))
    return _to_rgb(np.minimum(_outlines(grey), 1.0 - 0.8 * np.maximum(hatch, cross)))


def random_erase(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.2)) -> np.ndarray:
    """Fill one random rectangle (``area`` fraction of the image, aspect 0.3-3.3) with noise."""
    h, w = image.shape[:2]
    for _ in range(10):
        target = rng.uniform(*area) * h * w
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        eh, ew = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < eh < h and 0 < ew < w:
            y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            image = image.copy()
            image[y : y + eh, x : x + ew] = rng.integers(0, 256, size=(eh, ew, 3), dtype=np.uint8)
            return image
    return image


def colour_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    x = x * brightness
    x = (x - x.mean()) * contrast + x.mean()
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * saturation + grey
    return np.clip(x, 0, 255).astype(np.uint8)


def attribute_targets(record: ImageRecord, schema: AttributeSchema) -> list[int]:
    """Index of each schema attribute's value, :data:`UNKNOWN` where the record has none."""
    known = record.attributes or {}
    return [a.values.index(known[a.name]) if a.name in known else UNKNOWN for a in schema.attributes]


class TrainingImages(Dataset):
    """Records -> dicts of image tensor, identity label, modality, domain and attribute targets.

    ``labels[i]`` is record i's identity class; ``source[i]`` marks source-domain records.
    ``augmentation=None`` gives plain preprocessing (evaluation). Random draws are seeded by
    (seed, epoch, index), so a resumed run sees the same augmentations."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        labels: Sequence[int],
        configs: dict[Modality, PreprocessConfig],
        schema: AttributeSchema,
        *,
        source: Sequence[bool] | None = None,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ):
        if len(labels) != len(records):
            raise ValueError("one label per record")
        self.records = list(records)
        self.labels = list(labels)
        self.source = list(source) if source is not None else [False] * len(self.records)
        self.configs = configs
        self.schema = schema
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def domain(self, index: int) -> int:
        if self.source[index]:
            return SOURCE_PHOTO
        return TARGET_SKETCH if self.records[index].modality is Modality.SKETCH else TARGET_PHOTO

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        config = self.configs[record.modality]
        image = read_rgb(record.path)
        aug = self.augmentation
        rng = np.random.default_rng([self.seed, self.epoch, index]) if aug is not None else None
        if record.pseudo_sketch:
            # The extra draw only when hatching is on, so that runs without it augment as before.
            if aug is not None and aug.hatched > 0 and rng.random() < aug.hatched:
                image = hatched_sketch(image, rng)
            else:
                image = pencil_sketch(image)
        image = prepare(image, config)  # the sketch clean-up, when the model uses it
        if aug is not None:
            image = augment_uint8(image, config, record.modality, aug, rng)
        else:
            image = resize_rgb(image, config)
        return {
            "image": torch.from_numpy(normalise(image, config)),
            "label": torch.tensor(self.labels[index], dtype=torch.long),
            "modality": torch.tensor(MODALITY_INDEX[record.modality], dtype=torch.long),
            "domain": torch.tensor(self.domain(index), dtype=torch.long),
            "attributes": torch.tensor(attribute_targets(record, self.schema), dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }
