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

from core.common.imaging import load_rgb
from core.model.attributes import AttributeSchema
from core.model.network import Modality
from core.model.preprocess import PreprocessConfig, normalise, prepare, resize_rgb
from training.data import ImageRecord

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
        image = load_rgb(record.path)
        aug = self.augmentation
        rng = np.random.default_rng([self.seed, self.epoch, index]) if aug is not None else None
        if record.pseudo_sketch:
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
