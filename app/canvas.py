"""The drawing canvas: pen and eraser with mouse or tablet (pressure sets the line width), pan and
zoom. Finished strokes go to the :class:`SketchDocument` (undoable); the canvas only paints."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPointingDevice, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.strokes import PAPER, SketchDocument, Stroke, paint_stroke

MIN_WIDTH, MAX_WIDTH = 1.0, 64.0
MIN_ZOOM, MAX_ZOOM = 0.1, 16.0
SURROUND = QColor(110, 110, 116)


class SketchCanvas(QWidget):
    toolChanged = Signal(str)  # "pen" or "eraser"
    penWidthChanged = Signal(float)
    zoomChanged = Signal(float)

    def __init__(self, document: SketchDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.tool = "pen"
        self.pen_width = 4.0
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._fitted = True  # follow the widget size until the user zooms or pans
        self._stroke: Stroke | None = None
        self._stroke_from_tablet = False
        self._pan_from: QPointF | None = None
        self._space_down = False
        self._background_key = None
        self._background: QImage | None = None
        self.setFocusPolicy(Qt.StrongFocus)
        self.setAttribute(Qt.WA_TabletTracking, False)
        self.setCursor(Qt.CrossCursor)
        self.setMinimumSize(240, 320)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setAccessibleName("Sketch canvas")
        self.setToolTip(
            "Draw with the mouse or a tablet pen. [ and ] change the size; "
            "wheel zooms, middle button or Space+drag pans; Ctrl+0 fits."
        )
        document.changed.connect(self._document_changed)

    # -- tools -------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in ("pen", "eraser"):
            raise ValueError(tool)
        if tool != self.tool:
            self.tool = tool
            self.toolChanged.emit(tool)

    def set_pen_width(self, width: float) -> None:
        width = max(MIN_WIDTH, min(MAX_WIDTH, float(width)))
        if width != self.pen_width:
            self.pen_width = width
            self.penWidthChanged.emit(width)
            self.update()

    def grow_pen(self) -> None:
        self.set_pen_width(self.pen_width * 1.25 if self.pen_width >= 4 else self.pen_width + 1)

    def shrink_pen(self) -> None:
        self.set_pen_width(self.pen_width / 1.25 if self.pen_width > 4 else self.pen_width - 1)

    # -- view transform ----------------------------------------------------------------------
    def transform(self) -> QTransform:
        return QTransform(self._zoom, 0, 0, self._zoom, self._offset.x(), self._offset.y())

    def to_document(self, point: QPointF) -> QPointF:
        return QPointF((point.x() - self._offset.x()) / self._zoom, (point.y() - self._offset.y()) / self._zoom)

    def to_widget(self, point: QPointF) -> QPointF:
        return QPointF(point.x() * self._zoom + self._offset.x(), point.y() * self._zoom + self._offset.y())

    def zoom(self) -> float:
        return self._zoom

    def fit(self) -> None:
        """Show the whole sheet, centred."""
        margin = 12
        width, height = self.document.width, self.document.height
        available_w, available_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        self._zoom = max(MIN_ZOOM, min(available_w / width, available_h / height))
        self._offset = QPointF((self.width() - width * self._zoom) / 2, (self.height() - height * self._zoom) / 2)
        self._fitted = True
        self.zoomChanged.emit(self._zoom)
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        before = self.to_document(anchor)
        self._zoom = max(MIN_ZOOM, min(MAX_ZOOM, self._zoom * factor))
        self._offset = anchor - QPointF(before.x() * self._zoom, before.y() * self._zoom)
        self._fitted = False
        self.zoomChanged.emit(self._zoom)
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        self._offset += QPointF(dx, dy)
        self._fitted = False
        self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._fitted:
            self.fit()
        super().resizeEvent(event)

    def _document_changed(self) -> None:
        if self._fitted:
            self.fit()
        self.update()

    # -- strokes -----------------------------------------------------------------------------
    def _begin_stroke(self, position: QPointF, pressure: float, eraser: bool) -> None:
        self._stroke = Stroke(points=[], width=self.pen_width, eraser=eraser)
        self._extend_stroke(position, pressure)

    def _extend_stroke(self, position: QPointF, pressure: float) -> None:
        if self._stroke is None:
            return
        point = self.to_document(position)
        if self._stroke.points:
            last = self._stroke.points[-1]
            if abs(last[0] - point.x()) < 0.25 and abs(last[1] - point.y()) < 0.25:
                return
        self._stroke.points.append((point.x(), point.y(), float(pressure)))
        self.update()

    def _finish_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is not None and stroke.points:
            self.document.add_stroke(stroke)  # the document's change repaints and triggers a search
        self.update()

    def cancel_stroke(self) -> None:
        self._stroke = None
        self.update()

    def drawing(self) -> bool:
        return self._stroke is not None

    # -- mouse -------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        position = event.position()
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space_down):
            self._pan_from = position
            self.setCursor(Qt.ClosedHandCursor)
        elif event.button() == Qt.LeftButton:
            self._stroke_from_tablet = False
            self._begin_stroke(position, 1.0, self.tool == "eraser")
        elif event.button() == Qt.RightButton and self._stroke is not None:
            self.cancel_stroke()
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        position = event.position()
        if self._pan_from is not None:
            delta = position - self._pan_from
            self._pan_from = position
            self.pan_by(delta.x(), delta.y())
        elif self._stroke is not None and not self._stroke_from_tablet:
            self._extend_stroke(position, 1.0)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._pan_from is not None and event.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.OpenHandCursor if self._space_down else Qt.CrossCursor)
        elif event.button() == Qt.LeftButton and not self._stroke_from_tablet:
            self._finish_stroke()
        event.accept()

    # -- tablet ------------------------------------------------------------------------------
    def tabletEvent(self, event) -> None:  # noqa: N802
        kind = event.type()
        position = event.position()
        pressure = event.pressure()
        eraser = self.tool == "eraser" or event.pointerType() == QPointingDevice.PointerType.Eraser
        if kind == event.Type.TabletPress:
            self._stroke_from_tablet = True
            self._begin_stroke(position, pressure, eraser)
        elif kind == event.Type.TabletMove and self._stroke is not None and self._stroke_from_tablet:
            self._extend_stroke(position, pressure)
        elif kind == event.Type.TabletRelease and self._stroke_from_tablet:
            self._finish_stroke()
            self._stroke_from_tablet = False
        event.accept()  # accepted: Qt synthesises no mouse events, so no stroke is drawn twice

    # -- keyboard and wheel ------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15**steps, event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key_BracketRight:
            self.grow_pen()
        elif key == Qt.Key_BracketLeft:
            self.shrink_pen()
        elif key == Qt.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.setCursor(Qt.OpenHandCursor)
        elif key == Qt.Key_Escape and self._stroke is not None:
            self.cancel_stroke()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.setCursor(Qt.CrossCursor)
        else:
            super().keyReleaseEvent(event)

    # -- painting ----------------------------------------------------------------------------
    def _background_image(self) -> QImage | None:
        background = self.document.background
        key = id(background) if background is not None else None
        if key != self._background_key:
            self._background_key = key
            self._background = self.document.background_image()
        return self._background

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), SURROUND)
        painter.setTransform(self.transform())
        sheet = QRectF(0, 0, self.document.width, self.document.height)
        painter.fillRect(sheet, PAPER)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, self._zoom < 1)
        background = self._background_image()
        if background is not None:
            painter.drawImage(0, 0, background)
        painter.drawImage(0, 0, self.document.stroke_layer())
        if self._stroke is not None:
            if self._stroke.eraser:  # show the eraser's path; the result appears when it is finished
                painter.save()
                painter.setOpacity(0.35)
                preview = Stroke(self._stroke.points, self._stroke.width, eraser=False)
                painter.setPen(QPen(QColor(255, 120, 120)))
                paint_stroke(painter, preview)
                painter.restore()
            else:
                paint_stroke(painter, self._stroke)
        painter.resetTransform()
        painter.setPen(QPen(QColor(60, 60, 60)))
        painter.drawRect(self.transform().mapRect(sheet).adjusted(-1, -1, 0, 0))
        painter.end()
