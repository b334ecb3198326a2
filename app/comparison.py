"""Side-by-side comparison of the sketch and one candidate photo at full size, with the photo's
record and its attributes (a correction made here is saved as a manual value)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.attribute_text import describe_origin, format_attribute, local_time
from app.strokes import rgb_to_qimage
from app.video_frames import VideoProvenanceBox, video_source_of
from app.workers import TaskRunner

NOT_SET = "— not set —"


class ZoomView(QGraphicsView):
    """An image with wheel zoom and drag to pan."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setRenderHint(QPainter.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setAccessibleName(title)
        self.setMinimumSize(200, 300)
        self._fitted = True

    def set_image(self, image: QImage | None) -> None:
        self.item.setPixmap(QPixmap.fromImage(image) if image is not None else QPixmap())
        self.scene().setSceneRect(self.item.boundingRect())
        if self._fitted:
            self.fit()

    def fit(self) -> None:
        self._fitted = True
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.KeepAspectRatio)

    def actual_size(self) -> None:
        self._fitted = False
        self.resetTransform()

    def zoom_by(self, factor: float) -> None:
        self._fitted = False
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.15**steps)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fitted:
            self.fit()


class ComparisonDialog(QDialog):
    attributesSaved = Signal(int, dict)  # photo id, its attributes now
    failed = Signal(str)

    def __init__(
        self, runner: TaskRunner, workspace, candidates_model, sketch: QImage, row: int, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Compare sketch and photo")
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.runner, self.workspace, self.model = runner, workspace, candidates_model
        self.row = -1
        self.record = None
        self.closing = False  # results that arrive after closing are dropped
        self._request = 0

        self.sketch_view = ZoomView("Sketch")
        self.sketch_view.set_image(sketch)
        self.photo_view = ZoomView("Photo")
        views = QSplitter(Qt.Horizontal)
        views.addWidget(self.sketch_view)
        views.addWidget(self.photo_view)
        views.setStretchFactor(0, 1)
        views.setStretchFactor(1, 1)
        views.setSizes([400, 400])

        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.path_label = self._selectable()
        self.sha_label = self._selectable()
        self.imported_label = QLabel()
        self.size_label = QLabel()
        info = QFormLayout()
        info.addRow("Path", self.path_label)
        info.addRow("SHA-256", self.sha_label)
        info.addRow("Imported", self.imported_label)
        info.addRow("Size", self.size_label)

        self.attribute_box = QGroupBox("Attributes (bold: set by hand or imported; ~ italic: predicted)")
        self.attribute_form = QFormLayout(self.attribute_box)
        self.attribute_combos: dict[str, QComboBox] = {}
        self.attribute_labels: dict[str, QLabel] = {}
        for spec in workspace.schema.attributes:
            combo = QComboBox()
            combo.addItem(NOT_SET, None)
            for value in spec.values:
                combo.addItem(value, value)
            combo.setAccessibleName(f"Attribute {spec.name}")
            combo.currentIndexChanged.connect(self._edited)
            label = QLabel()
            label.setTextFormat(Qt.RichText)
            line = QHBoxLayout()
            line.addWidget(combo, 1)
            line.addWidget(label, 1)
            self.attribute_form.addRow(spec.name.replace("_", " "), line)
            self.attribute_combos[spec.name] = combo
            self.attribute_labels[spec.name] = label
        self.save_button = QPushButton("Save corrections")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_corrections)
        self.attribute_form.addRow(self.save_button)

        self.previous_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.previous_button.clicked.connect(self.show_previous)
        self.next_button.clicked.connect(self.show_next)
        fit_button = QPushButton("Fit")
        fit_button.clicked.connect(self._fit)
        actual_button = QPushButton("100%")
        actual_button.clicked.connect(self._actual)
        zoom_in, zoom_out = QPushButton("+"), QPushButton("−")
        zoom_in.clicked.connect(lambda: self._zoom(1.25))
        zoom_out.clicked.connect(lambda: self._zoom(0.8))
        for button in (fit_button, actual_button, zoom_in, zoom_out, self.previous_button, self.next_button):
            button.setAutoDefault(False)
        self.save_button.setAutoDefault(False)
        self.status = QLabel()
        nav = QHBoxLayout()
        nav.addWidget(self.previous_button)
        nav.addWidget(self.next_button)
        nav.addSpacing(16)
        nav.addWidget(zoom_out)
        nav.addWidget(zoom_in)
        nav.addWidget(fit_button)
        nav.addWidget(actual_button)
        nav.addStretch(1)
        nav.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)

        side = QWidget()
        side.setMaximumWidth(480)
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.title)
        side_layout.addLayout(info)
        side_layout.addWidget(self.attribute_box)
        self.video_box = VideoProvenanceBox()  # for a photo cut from video: the frame, where and when
        side_layout.addWidget(self.video_box)
        side_layout.addStretch(1)
        body = QSplitter(Qt.Horizontal)
        body.addWidget(views)
        body.addWidget(side)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(body, 1)
        layout.addLayout(nav)
        layout.addWidget(buttons)

        for keys, slot in (
            ((Qt.Key_Right, Qt.Key_PageDown, Qt.Key_N), self.show_next),
            ((Qt.Key_Left, Qt.Key_PageUp, Qt.Key_P), self.show_previous),
        ):
            for key in keys:
                QShortcut(QKeySequence(key), self, slot)
        self.resize(1100, 720)
        self.show_row(row)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closing = True
        super().closeEvent(event)

    @staticmethod
    def _selectable() -> QLineEdit:
        field = QLineEdit()
        field.setReadOnly(True)
        field.setFrame(False)
        field.setStyleSheet("background: transparent;")
        return field

    # -- navigation --------------------------------------------------------------------------
    def show_next(self) -> None:
        if self.row + 1 < self.model.total():
            self.show_row(self.row + 1)

    def show_previous(self) -> None:
        if self.row > 0:
            self.show_row(self.row - 1)

    def show_row(self, row: int) -> None:
        candidate = self.model.candidate(row)
        if candidate is None:
            return
        self.row = row
        self.model.ensure_shown(row)
        self._request += 1
        request = self._request
        self.title.setText(f"<b>#{candidate.rank}</b> of {self.model.total()} · score {candidate.score:.3f}")
        self.previous_button.setEnabled(row > 0)
        self.next_button.setEnabled(row + 1 < self.model.total())
        self.status.setText("Loading photo…")
        workspace, photo_id = self.workspace, candidate.photo_id

        def load(task):
            from core.common.imaging import load_rgb

            record = workspace.photo(photo_id)
            try:
                image, problem = rgb_to_qimage(load_rgb(record.path)), ""
            except Exception as exc:  # noqa: BLE001 - show the thumbnail and say why
                image = QImage.fromData(workspace.thumbnail(photo_id))
                problem = f"Showing the thumbnail: {exc}"
            return request, record, image, problem, video_source_of(workspace, photo_id)

        self.runner.submit(
            load, pool="io", on_result=self._loaded, on_error=self._load_failed, name="photo", owner=self
        )

    def _loaded(self, result) -> None:
        request, record, image, problem, seen = result
        if request != self._request:
            return
        self.video_box.show_source(seen)
        self.record = record
        self.photo_view.set_image(image)
        self.path_label.setText(record.path)
        self.path_label.setCursorPosition(0)
        self.path_label.setToolTip(record.path + ("\n(the file is missing)" if record.missing else ""))
        self.sha_label.setText(record.sha256)
        self.sha_label.setCursorPosition(0)
        self.imported_label.setText(local_time(record.imported_at))
        self.size_label.setText(f"{record.width} × {record.height} pixels, {record.size_bytes:,} bytes")
        self._show_attributes(record.attributes)
        self.status.setText(problem)

    def _load_failed(self, message: str) -> None:
        self.status.setText(message)
        self.failed.emit(message)

    def _show_attributes(self, attributes) -> None:
        for name, combo in self.attribute_combos.items():
            value = attributes.get(name)
            combo.blockSignals(True)
            combo.setCurrentIndex(combo.findData(value.value) if value is not None else 0)
            combo.blockSignals(False)
            label = self.attribute_labels[name]
            if value is None:
                label.setText("<i>unknown</i>")
                label.setToolTip("")
            else:
                origin = describe_origin(value)
                label.setText(f"{format_attribute(value, rich=True)} <small>({escape(origin)})</small>")
                label.setToolTip(origin)
        self.save_button.setEnabled(False)

    # -- corrections -------------------------------------------------------------------------
    def corrections(self) -> dict[str, str]:
        """The values the user changed here, and only those: an untouched prediction stays a
        prediction (a model's guess must never be saved as a person's statement)."""
        if self.record is None:
            return {}
        changed = {}
        for name, combo in self.attribute_combos.items():
            chosen = combo.currentData()
            current = self.record.attributes.get(name)
            if chosen is None:
                continue
            if current is None or current.value != chosen:
                changed[name] = chosen
        return changed

    def _edited(self, _index: int) -> None:
        self.save_button.setEnabled(bool(self.corrections()))

    def save_corrections(self) -> None:
        changes = self.corrections()
        if not changes or self.record is None:
            return
        workspace, photo_id = self.workspace, self.record.id
        self.save_button.setEnabled(False)
        self.status.setText("Saving…")

        def save(task):
            return workspace.gallery.set_attributes_by_hand(photo_id, changes)  # who and when are recorded with them

        self.runner.submit(
            save, pool="io", on_result=self._saved, on_error=self._save_failed, name="save attributes", owner=self
        )

    def _saved(self, record) -> None:
        if self.record is not None and record.id == self.record.id:
            self.record = record
            self._show_attributes(record.attributes)
        self.status.setText("Corrections saved.")
        self.attributesSaved.emit(record.id, dict(record.attributes))

    def _save_failed(self, message: str) -> None:
        self.status.setText(f"Not saved: {message}")
        self.save_button.setEnabled(True)
        self.failed.emit(message)

    # -- zoom (both images together) ---------------------------------------------------------
    def _fit(self) -> None:
        self.sketch_view.fit()
        self.photo_view.fit()

    def _actual(self) -> None:
        self.sketch_view.actual_size()
        self.photo_view.actual_size()

    def _zoom(self, factor: float) -> None:
        self.sketch_view.zoom_by(factor)
        self.photo_view.zoom_by(factor)
