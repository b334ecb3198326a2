"""Photo-to-pencil augmentation (KTCAA, AAAI 2026): a training photo is sometimes turned, wholly or
in one random rectangle, into a pencil-like colour dodge of itself, and keeps its photo label.

Unlike the pseudo-sketches (XDoG renderings labelled as sketches, :func:`training.dataset.pencil_sketch`),
this asks the photo encoder to recognise a person whose photo looks partly drawn: features that
survive the dodge are the ones a sketch can also carry. It acts on the uint8 image at the
network's input size, so the blur kernels mean the same whatever size the photos were stored at.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Side of the random rectangle as a fraction of the image's height and of its width (each drawn
# uniformly): large enough to cover a limb or a garment, small enough to leave most of the photo.
REGION_SIDES = (0.2, 0.8)


@dataclass(frozen=True)
class PartialPencil:
    """Each photo: the whole image dodged with probability ``whole``, else one random rectangle
    with probability ``region``, else unchanged. Kernels are Gaussian blur sizes in pixels."""

    whole: float = 0.05
    whole_kernel: int = 27
    region: float = 0.45
    region_kernel: int = 17

    def __post_init__(self) -> None:
        if not (0 <= self.whole <= 1 and 0 <= self.region <= 1 and self.whole + self.region <= 1):
            raise ValueError(f"pencil probabilities must be in [0, 1], sum at most 1: {self.whole}, {self.region}")
        for kernel in (self.whole_kernel, self.region_kernel):
            if kernel < 1 or kernel % 2 == 0:
                raise ValueError(f"a pencil blur kernel must be odd and positive, got {kernel}")


@dataclass(frozen=True)
class PencilChoice:
    kernel: int
    box: tuple[int, int, int, int]  # top, left, bottom, right (bottom and right exclusive)


def pencil_dodge(image: np.ndarray, kernel: int) -> np.ndarray:
    """Colour dodge of each channel by its own blurred inverse: min(255, image * 255 / (255 - blur)).

    Flat areas (blur close to the inverse) go to paper white, edges stay dark: a pencil drawing in
    the photo's own colours. Integer arithmetic, so a run reproduces to the bit; a zero divisor
    (a black area wider than the kernel) is given the limit of its neighbours, white."""
    blur = cv2.GaussianBlur(255 - image, (kernel, kernel), 0).astype(np.int32)
    divisor = 255 - blur
    dodged = image.astype(np.int32) * 255 // np.maximum(divisor, 1)
    return np.where(divisor == 0, 255, np.minimum(dodged, 255)).astype(np.uint8)


def random_rectangle(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A rectangle inside the image, each side a uniform :data:`REGION_SIDES` fraction of the image's."""
    lo, hi = REGION_SIDES
    box_height = max(1, round(height * rng.uniform(lo, hi)))
    box_width = max(1, round(width * rng.uniform(lo, hi)))
    top = int(rng.integers(0, height - box_height + 1))
    left = int(rng.integers(0, width - box_width + 1))
    return top, left, top + box_height, left + box_width


def choose_pencil(settings: PartialPencil, height: int, width: int, rng: np.random.Generator) -> PencilChoice | None:
    """What to dodge in one photo (None: nothing). One uniform draw picks the kind; a rectangle
    takes four more, so an unchanged photo leaves the generator one draw further on."""
    draw = rng.random()
    if draw < settings.whole:
        return PencilChoice(settings.whole_kernel, (0, 0, height, width))
    if draw < settings.whole + settings.region:
        return PencilChoice(settings.region_kernel, random_rectangle(height, width, rng))
    return None


def partial_pencil(image: np.ndarray, settings: PartialPencil, rng: np.random.Generator) -> np.ndarray:
    """``image`` (HxWx3 uint8) dodged as :func:`choose_pencil` draws; the input is never modified."""
    choice = choose_pencil(settings, image.shape[0], image.shape[1], rng)
    if choice is None:
        return image
    top, left, bottom, right = choice.box
    # the whole image is dodged and the rectangle cut from it, so the blur near the rectangle's edges
    # sees the real neighbours (as in a whole-image dodge) rather than a border reflection
    out = image.copy()
    out[top:bottom, left:right] = pencil_dodge(image, choice.kernel)[top:bottom, left:right]
    return out
