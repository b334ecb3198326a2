"""The sketch as vectors: strokes of (x, y, pressure) points over an optional background image,
saved as JSON beside a PNG export, rendered to an RGB array for the query, edited through a
QUndoStack."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QLineF, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QUndoCommand, QUndoStack

from core.common.private_files import write_private_file

FORMAT_VERSION = 1
DEFAULT_SIZE = (400, 800)  # width, height: a standing person, about the gallery photos' aspect
MIN_PRESSURE = 0.15
INK = QColor(0, 0, 0)
PAPER = QColor(255, 255, 255)


class SketchFileError(Exception):
    """A sketch file that cannot be read (the message names the file and the reason)."""


@dataclass
class Stroke:
    points: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, pressure in [0, 1]
    width: float = 4.0
    eraser: bool = False

    def to_json(self) -> dict:
        return {
            "tool": "eraser" if self.eraser else "pen",
            "width": self.width,
            "points": [[x, y, p] for x, y, p in self.points],
        }

    @classmethod
    def from_json(cls, data: dict) -> Stroke:
        points = [(float(x), float(y), float(p)) for x, y, p in data["points"]]
        return cls(points=points, width=float(data["width"]), eraser=data.get("tool") == "eraser")

    def bounds(self) -> QRectF:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        pad = self.width
        return QRectF(min(xs) - pad, min(ys) - pad, max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad)


def segment_width(stroke: Stroke, pressure: float) -> float:
    return max(0.5, stroke.width * max(MIN_PRESSURE, min(1.0, pressure)))


def paint_stroke(painter: QPainter, stroke: Stroke) -> None:
    """Paint one stroke; an eraser stroke clears what is under it (on a transparent layer)."""
    if not stroke.points:
        return
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing)
    if stroke.eraser:
        painter.setCompositionMode(QPainter.CompositionMode_Clear)
    colour = INK
    points = stroke.points
    if len(points) == 1:
        x, y, p = points[0]
        w = segment_width(stroke, p)
        painter.setPen(Qt.NoPen)
        painter.setBrush(colour)
        painter.drawEllipse(QPointF(x, y), w / 2, w / 2)
    else:
        for (x0, y0, p0), (x1, y1, p1) in zip(points, points[1:]):
            pen = QPen(colour, segment_width(stroke, (p0 + p1) / 2), Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
            painter.setPen(pen)
            painter.drawLine(QLineF(x0, y0, x1, y1))
    painter.restore()


class SketchDocument(QObject):
    """Strokes plus an optional greyscale background (an imported scan), all in document pixels."""

    changed = Signal()  # anything that changes the query image

    def __init__(self, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], parent: QObject | None = None):
        super().__init__(parent)
        self.width, self.height = width, height
        self.strokes: list[Stroke] = []
        self.background: np.ndarray | None = None  # H x W uint8 greyscale
        self.undo_stack = QUndoStack(self)
        self._layer: QImage | None = None  # strokes rendered on transparency, rebuilt when needed

    # -- state -------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.strokes and self.background is None

    def has_unsaved_work(self) -> bool:
        """Something was drawn since the sketch was last saved, opened or imported as a scan."""
        return not self.is_empty() and not self.undo_stack.isClean()

    def mark_changed(self) -> None:
        """After an edit (by the undo commands below): the drawing is made again and listeners told."""
        self._layer = None
        self.changed.emit()

    def set_state(self, strokes: list[Stroke], background: np.ndarray | None, size: tuple[int, int]) -> None:
        self.strokes = list(strokes)
        self.background = background
        self.width, self.height = size
        self.mark_changed()

    def state(self) -> tuple[list[Stroke], np.ndarray | None, tuple[int, int]]:
        return list(self.strokes), self.background, (self.width, self.height)

    # -- undoable edits ----------------------------------------------------------------------
    def add_stroke(self, stroke: Stroke) -> None:
        if stroke.points:
            self.undo_stack.push(_AddStroke(self, stroke))

    def clear(self) -> None:
        if not self.is_empty():
            self.undo_stack.push(_ReplaceState(self, "Clear", [], None, DEFAULT_SIZE))

    def set_background(self, grey: np.ndarray) -> None:
        """Make ``grey`` (H x W uint8) the background; the document takes its size, strokes go. The
        scan is on disk, so only strokes drawn over it from now on are work that can be lost."""
        height, width = grey.shape[:2]
        self.undo_stack.push(_ReplaceState(self, "Import sketch", [], np.ascontiguousarray(grey), (width, height)))
        self.undo_stack.setClean()

    # -- rendering ---------------------------------------------------------------------------
    def stroke_layer(self) -> QImage:
        if self._layer is None:
            layer = QImage(self.width, self.height, QImage.Format_ARGB32_Premultiplied)
            layer.fill(Qt.transparent)
            painter = QPainter(layer)
            for stroke in self.strokes:
                paint_stroke(painter, stroke)
            painter.end()
            self._layer = layer
        return self._layer

    def background_image(self) -> QImage | None:
        if self.background is None:
            return None
        grey = self.background
        image = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0], QImage.Format_Grayscale8)
        return image.copy()  # own the pixels

    def render(self) -> QImage:
        """The sketch as it is searched: paper, background scan, strokes."""
        image = QImage(self.width, self.height, QImage.Format_RGB888)
        image.fill(PAPER)
        painter = QPainter(image)
        background = self.background_image()
        if background is not None:
            painter.drawImage(0, 0, background)
        painter.drawImage(0, 0, self.stroke_layer())
        painter.end()
        return image

    def to_array(self) -> np.ndarray:
        """H x W x 3 uint8 RGB, the query for the search."""
        return qimage_to_rgb(self.render())

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``NAME.png`` (the rendered sketch) and ``NAME.json`` (the vectors; the background,
        if any, as ``NAME.background.png``). Returns (png, json)."""
        base = Path(path).with_suffix("")
        png, vectors = base.with_suffix(".png"), base.with_suffix(".json")
        background_name = None
        if self.background is not None:
            background_file = base.parent / f"{base.name}.background.png"
            write_private_file(background_file, _png_bytes(self.background_image(), background_file), "sketch")
            background_name = background_file.name
        data = {
            "format": "sketchsearch-sketch",
            "version": FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "background": background_name,
            "strokes": [s.to_json() for s in self.strokes],
        }
        # whole or not at all, and private: a sketch describes a suspect
        write_private_file(vectors, json.dumps(data).encode("utf-8"), "sketch")
        write_private_file(png, _png_bytes(self.render(), png), "sketch")
        self.undo_stack.setClean()
        return png, vectors

    def load(self, path: str | Path) -> None:
        """Open a sketch saved by :meth:`save` (the ``.json``, or the ``.png`` beside it), undoably."""
        vectors = Path(path).with_suffix(".json")
        try:
            data = json.loads(vectors.read_text(encoding="utf-8"))
            if data.get("format") != "sketchsearch-sketch":
                raise ValueError("not a SketchSearch sketch")
            if int(data.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"made by a newer SketchSearch (format {data['version']})")
            strokes = [Stroke.from_json(s) for s in data["strokes"]]
            size = (int(data["width"]), int(data["height"]))
            background = None
            if data.get("background"):
                image = QImage(str(vectors.parent / data["background"]))
                if image.isNull():
                    raise ValueError(f"background image {data['background']} is missing or unreadable")
                background = qimage_to_grey(image)
        except FileNotFoundError:
            raise SketchFileError(f"{vectors}: no such file") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SketchFileError(f"{vectors}: cannot open the sketch ({exc})") from None
        self.undo_stack.push(_ReplaceState(self, "Open sketch", strokes, background, size))
        self.undo_stack.setClean()  # as it is on disk


class _AddStroke(QUndoCommand):
    def __init__(self, document: SketchDocument, stroke: Stroke):
        super().__init__("Eraser stroke" if stroke.eraser else "Stroke")
        self.document, self.stroke = document, stroke

    def redo(self) -> None:
        self.document.strokes.append(self.stroke)
        self.document.mark_changed()

    def undo(self) -> None:
        self.document.strokes.pop()
        self.document.mark_changed()


class _ReplaceState(QUndoCommand):
    def __init__(self, document: SketchDocument, text: str, strokes, background, size):
        super().__init__(text)
        self.document = document
        self.before = document.state()
        self.after = (list(strokes), background, tuple(size))

    def redo(self) -> None:
        self.document.set_state(*self.after)

    def undo(self) -> None:
        self.document.set_state(*self.before)


def qimage_to_rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return buffer[:, : width * 3].reshape(height, width, 3).copy()


def qimage_to_grey(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format_Grayscale8)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return buffer[:, :width].copy()


def rgb_to_qimage(array: np.ndarray) -> QImage:
    """H x W x 3 uint8 -> a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, array.strides[0], QImage.Format_RGB888).copy()


def _png_bytes(image: QImage, path: Path) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError(f"{path}: cannot encode the sketch as PNG")
    buffer.close()
    return bytes(data)
