"""The region map drawn over a picture in the comparison view: each region tinted by how alike the
model found it in the sketch and the photo, its figure written in it, and the legend that says what
the tints are, where they come from, and that they are an aid, not evidence. Core computes the
figures (core.casework.regions); this only draws them."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QLinearGradient, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsItemGroup,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from core.model.regions import MIRROR_NOTE, REGION_AID, REGION_SOURCE, SCALE, RegionSimilarity, tint

TINT_ALPHA = 120  # of 255: the picture stays visible under its tint


def tint_colour(cosine: float, alpha: int = TINT_ALPHA) -> QColor:
    red, green, blue = tint(cosine)
    return QColor(red, green, blue, alpha)


class RegionOverlay:
    """Tinted cells over a picture item in a scene, replaced whenever the figures change."""

    def __init__(self, scene: QGraphicsScene):
        self.scene = scene
        self.group: QGraphicsItemGroup | None = None
        self.cells: list[QGraphicsRectItem] = []  # row-major, for tests and the legend's reader

    def show(self, picture: QRectF, similarity: RegionSimilarity | None, labels: bool = True) -> None:
        self.clear()
        if similarity is None or picture.isEmpty():
            return
        group = QGraphicsItemGroup()
        cell_w, cell_h = picture.width() / similarity.columns, picture.height() / similarity.rows
        pen = QPen(QColor(60, 60, 60, 160))
        pen.setCosmetic(True)
        joined = similarity.mirrored and similarity.columns == 2  # a row is one region: one figure across it
        for row in range(similarity.rows):
            for column in range(similarity.columns):
                value = similarity.cells[row][column]
                cell = QGraphicsRectItem(picture.x() + column * cell_w, picture.y() + row * cell_h, cell_w, cell_h)
                cell.setBrush(QBrush(tint_colour(value)))
                cell.setPen(Qt.NoPen if joined else pen)
                cell.setToolTip(f"region row {row + 1}: cosine similarity {value:+.3f}")
                group.addToGroup(cell)
                self.cells.append(cell)
            if joined:
                band = QGraphicsRectItem(picture.x(), picture.y() + row * cell_h, picture.width(), cell_h)
                band.setPen(pen)
                group.addToGroup(band)
        if labels:
            font = QFont()
            font.setPixelSize(max(8, int(min(cell_h, picture.width()) * 0.16)))
            font.setBold(True)
            for row in range(similarity.rows):
                spans = [(0, similarity.columns)] if joined else [(c, 1) for c in range(similarity.columns)]
                for column, span in spans:
                    text = QGraphicsSimpleTextItem(f"{similarity.cells[row][column]:+.2f}")
                    text.setFont(font)
                    text.setBrush(QBrush(QColor(20, 20, 20)))
                    box = text.boundingRect()
                    centre_x = picture.x() + (column + span / 2) * cell_w
                    text.setPos(centre_x - box.width() / 2, picture.y() + (row + 0.5) * cell_h - box.height() / 2)
                    group.addToGroup(text)
        group.setFlag(QGraphicsItem.ItemIsSelectable, False)
        self.scene.addItem(group)
        self.group = group

    def clear(self) -> None:
        if self.group is not None:
            self.scene.removeItem(self.group)
            self.group = None
        self.cells = []


def scale_pixmap(width: int = 180, height: int = 14) -> QPixmap:
    """The tint scale from -SCALE (blue) through 0 (white) to +SCALE (orange)."""
    pixmap = QPixmap(width, height)
    painter = QPainter(pixmap)
    gradient = QLinearGradient(0, 0, width, 0)
    for step in range(11):
        gradient.setColorAt(step / 10, tint_colour(-SCALE + 2 * SCALE * step / 10, 255))
    painter.fillRect(pixmap.rect(), gradient)
    painter.setPen(QColor(120, 120, 120))
    painter.drawRect(0, 0, width - 1, height - 1)
    painter.end()
    return pixmap


class RegionLegend(QWidget):
    """What the tints mean, where the figures come from, and that they are no evidence."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        bar = QLabel()
        bar.setPixmap(scale_pixmap(260))
        bar.setToolTip("cosine similarity of a region of the sketch and the same region of the photo")
        ends = QHBoxLayout()
        ends.setContentsMargins(0, 0, 0, 0)
        for text, align in (
            (f"−{SCALE:.1f} or less", Qt.AlignLeft),
            ("0", Qt.AlignCenter),
            (f"+{SCALE:.1f} or more", Qt.AlignRight),
        ):
            label = QLabel(text)
            label.setAlignment(align)
            ends.addWidget(label, 1)
        scale = QVBoxLayout()
        scale.setSpacing(1)
        scale.addWidget(bar)
        scale.addLayout(ends)
        scale.addWidget(QLabel("blue: unlike · white: neither · orange: alike"))
        scale.addStretch(1)
        self.aid = QLabel(f"<b>{REGION_AID}</b>")
        self.aid.setWordWrap(True)
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextSelectableByMouse)
        small = self.source.font()
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.source.setFont(small)
        words = QVBoxLayout()
        words.addWidget(self.aid)
        words.addWidget(self.source)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(scale)
        layout.addLayout(words, 1)

    def describe(self, model_name: str, mirrored: bool, unavailable: str = "") -> None:
        if unavailable:
            self.source.setText(f"No region map: {unavailable}.")
            return
        text = REGION_SOURCE.replace("the named model", f"the model {model_name}")
        text += " The sketch is shown as the model is given it (cropped to its marks and stretched)."
        self.source.setText(text + (" " + MIRROR_NOTE if mirrored else ""))
