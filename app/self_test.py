"""``sketchsearch --self-test``: open the main window offscreen, import a small generated gallery,
draw a sketch, wait for the candidates, close. Exit 0 when all of it worked, else 1 with the reason."""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TIMEOUT_S = 180.0


def draw_figure(seed: int, size: tuple[int, int] = (96, 192)) -> Image.Image:
    """A distinct little standing figure on a textured background (unique content per seed)."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = rng.integers(120, 255, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    top = tuple(int(c) for c in rng.integers(0, 255, 3))
    bottom = tuple(int(c) for c in rng.integers(0, 255, 3))
    draw.ellipse([width * 0.35, height * 0.03, width * 0.65, height * 0.2], fill=(230, 190, 160), outline=(40, 30, 30))
    draw.rectangle([width * 0.25, height * 0.2, width * 0.75, height * 0.55], fill=top, outline=(20, 20, 20))
    draw.rectangle([width * 0.3, height * 0.55, width * 0.7, height * 0.95], fill=bottom, outline=(20, 20, 20))
    return image


def write_figures(folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(start, start + count):
        path = folder / f"figure_{seed:03d}.jpg"
        draw_figure(seed).save(path, quality=90)
        paths.append(path)
    return paths


def figure_strokes(width: int, height: int):
    """Strokes of a standing figure, in document pixels: head, body, legs."""
    from app.strokes import Stroke

    cx = width / 2
    head = [
        (cx + 0.12 * width * math.cos(t), 0.12 * height + 0.07 * height * math.sin(t), 0.8)
        for t in np.linspace(0, 2 * math.pi, 32)
    ]
    body = [
        (cx - 0.22 * width, 0.22 * height, 1.0),
        (cx + 0.22 * width, 0.22 * height, 1.0),
        (cx + 0.2 * width, 0.55 * height, 1.0),
        (cx - 0.2 * width, 0.55 * height, 1.0),
        (cx - 0.22 * width, 0.22 * height, 1.0),
    ]
    left_leg = [(cx - 0.1 * width, 0.55 * height, 1.0), (cx - 0.12 * width, 0.95 * height, 0.6)]
    right_leg = [(cx + 0.1 * width, 0.55 * height, 1.0), (cx + 0.12 * width, 0.95 * height, 0.6)]
    return [Stroke(points, width=6.0) for points in (head, body, left_leg, right_leg)]


def wait_until(app, condition, timeout: float, what: str, errors: list[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if errors:
            raise RuntimeError(f"error while waiting for {what}: {errors[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def run_self_test(args) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from app.gui import create_application
    from app.main_window import LaunchOptions, MainWindow

    app = create_application()
    errors: list[str] = []
    previous_hook = sys.excepthook
    sys.excepthook = lambda kind, value, tb: errors.append(f"{kind.__name__}: {value}")  # fail fast, not on timeout
    window = None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sketchsearch-self-test-") as tmp:
        root = Path(tmp)
        try:
            gallery = root / "gallery"
            write_figures(gallery, 6)
            settings = QSettings(str(root / "settings.ini"), QSettings.IniFormat)
            window = MainWindow(LaunchOptions(root / "data", args.model, args.device), settings)
            window.show()
            app.processEvents()
            print("window shown", flush=True)
            wait_until(
                app, lambda: window.workspace is not None or window.last_error, TIMEOUT_S, "the model to load", errors
            )
            if window.workspace is None:
                raise RuntimeError(window.last_error)
            print(
                f"model loaded: {window.status_bar.model_label.text()} on {window.status_bar.device_label.text()}",
                flush=True,
            )

            dialog = window.gallery_jobs.start_import([gallery])
            wait_until(app, lambda: not dialog.running(), TIMEOUT_S, "the import", errors)
            if dialog.summary is None or dialog.summary.added != 6:
                raise RuntimeError(f"import: {dialog.error or dialog.counts.text()}")
            print(f"gallery: {dialog.counts.text()}")
            dialog.close()

            for stroke in figure_strokes(window.document.width, window.document.height):
                window.document.add_stroke(stroke)
            wait_until(
                app,
                lambda: window.candidates.rowCount() > 0 or window.last_error,
                TIMEOUT_S,
                "the search results",
                errors,
            )
            if window.candidates.rowCount() == 0:
                raise RuntimeError(f"search: {window.last_error}")
            if window.candidates.total() != 6:
                raise RuntimeError(f"expected 6 candidates, got {window.candidates.total()}")
            print(f"search: {window.grid.search_state.text()}")
        except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
            print(f"self-test failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            if window is not None:
                window.document.clear()  # the test figure is nobody's work: quit without asking to save it
                window.close()
                window.deleteLater()
                app.processEvents()
            sys.excepthook = previous_hook
    if errors:
        print(f"self-test failed: {errors[0]}", file=sys.stderr)
        return 1
    print(f"self-test passed in {time.monotonic() - started:.1f} s")
    return 0
