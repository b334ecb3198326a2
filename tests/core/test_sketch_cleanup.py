"""The sketch clean-up: a scan's grey paper and wide margins, or a canvas's empty space, must not
change what the network sees of the drawing."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.preprocess import PreprocessConfig, preprocess
from core.model.sketch_cleanup import clean_sketch, content_box, crop_to_ink


def drawn_figure(height: int = 240, width: int = 100, paper: int = 255, ink: int = 20) -> np.ndarray:
    """A stick figure that touches its frame: head, body, arms, legs (greyscale uint8)."""
    grey = np.full((height, width), paper, np.uint8)
    grey[0:40, 30:70] = ink  # head
    grey[40:150, 45:55] = ink  # body
    grey[60:70, 0:100] = ink  # arms
    grey[150:240, 20:30] = ink  # legs
    grey[150:240, 70:80] = ink
    return grey


def on_page(figure: np.ndarray, top: int, left: int, page: tuple[int, int], paper: int) -> np.ndarray:
    sheet = np.full(page, paper, np.uint8)
    sheet[top : top + figure.shape[0], left : left + figure.shape[1]] = figure
    return sheet


def test_crop_to_ink_frames_the_drawing_with_a_margin_and_whitens_the_paper():
    # a photographed page: grey paper, dark grey pencil, the figure off-centre with a stray speck
    page = on_page(drawn_figure(paper=170, ink=60), top=300, left=40, page=(700, 500), paper=170)
    page[5, 495] = 60  # a single-pixel speck in a corner is not part of the drawing
    cropped = crop_to_ink(page)
    height, width = cropped.shape
    assert 240 <= height <= 240 + 2 * (0.04 * 240 + 3) and 100 <= width <= 100 + 2 * (0.04 * 100 + 3)
    assert cropped.max() == 255 and cropped.min() == 0  # paper white, pencil black
    assert content_box(cropped) is not None


def test_a_blank_page_is_left_whole():
    blank = np.full((120, 80), 230, np.uint8)
    assert content_box(blank) is None
    assert crop_to_ink(blank).shape == (120, 80)


def test_clean_sketch_gives_three_equal_channels():
    rgb = np.stack([on_page(drawn_figure(), 50, 50, (400, 300), 255)] * 3, axis=2)
    rgb[..., 0] //= 2  # a tinted scan
    cleaned = clean_sketch(rgb)
    assert cleaned.ndim == 3 and cleaned.shape[2] == 3 and cleaned.dtype == np.uint8
    np.testing.assert_array_equal(cleaned[..., 0], cleaned[..., 2])


@pytest.mark.parametrize("paper,place", [(255, (10, 10)), (180, (300, 160)), (210, (40, 480))])
def test_the_network_input_does_not_depend_on_paper_or_margins(paper, place):
    config = PreprocessConfig(height=64, width=32, greyscale=True, clean_sketch=True)
    reference = on_page(drawn_figure(), 100, 100, page=(500, 400), paper=255)
    page = on_page(drawn_figure(paper=paper, ink=paper // 4), *place, page=(800, 600), paper=paper)
    expected = preprocess(np.stack([reference] * 3, axis=2), config)
    got = preprocess(np.stack([page] * 3, axis=2), config)
    difference = np.abs(got - expected).mean()
    assert difference < 0.05, difference  # in units of the normalisation's std: a few grey levels
    without = preprocess(np.stack([page] * 3, axis=2), PreprocessConfig(height=64, width=32, greyscale=True))
    assert np.abs(without - expected).mean() > 0.5


def test_older_manifests_have_no_clean_up():
    stored = PreprocessConfig(greyscale=True).to_json()
    del stored["clean_sketch"]  # as written before the option existed
    assert PreprocessConfig.from_json(stored).clean_sketch is False
    assert PreprocessConfig.from_json(PreprocessConfig(clean_sketch=True).to_json()).clean_sketch is True
