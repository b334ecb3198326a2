"""Image preprocessing: the one function that turns a decoded image into network input.

Training and inference both call :func:`preprocess` with the :class:`PreprocessConfig` recorded in
the checkpoint manifest, so a model always sees at search time exactly what it saw in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from core.model.sketch_cleanup import clean_sketch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    height: int = 256
    width: int = 128
    greyscale: bool = False
    # greyscale, auto-contrast and crop to the drawn marks first (sketches: a scan's paper and
    # margins, or a canvas's empty space, would otherwise shrink the figure the network sees)
    clean_sketch: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PreprocessConfig:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            greyscale=bool(data["greyscale"]),
            clean_sketch=bool(data.get("clean_sketch", False)),  # absent from older manifests
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
        )


def prepare(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The content step before resizing (and before training augmentation): the sketch clean-up
    when the config asks for it, else the image unchanged."""
    return clean_sketch(image) if config.clean_sketch else image


def resize_rgb(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize an RGB uint8 image to the network's input size (stretching, as person re-ID models do);
    greyscale configs keep three identical channels so one backbone serves both kinds of input."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    if config.greyscale:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        image = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    h, w = image.shape[:2]
    shrinking = h * w > config.height * config.width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (config.width, config.height), interpolation=interpolation)


def normalise(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """HxWx3 uint8 at input size -> 3xHxW float32, normalised by the config's mean and std."""
    scale = np.float32(1.0 / 255.0)
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    chw = (image.astype(np.float32) * scale - mean) / std
    return np.ascontiguousarray(chw.transpose(2, 0, 1))


def preprocess(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Decoded RGB uint8 image (any size) -> network input (3 x height x width, float32)."""
    return normalise(resize_rgb(prepare(image, config), config), config)
