"""Side-by-side comparison of the sketch and one candidate photo at full size, with the photo's
record and its attributes (a correction made here is saved as a manual value), and on request the
region map: which regions of the two the model found alike (app.region_overlay draws it)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QImage, QKeySequence, QPainter, QPixmap, QShortcut
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
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.attribute_text import describe_origin, format_attribute, local_time
from app.region_overlay import RegionLegend, RegionOverlay
from app.strokes import qimage_to_rgb, rgb_to_qimage
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
        self.overlay = RegionOverlay(self.scene())

    def set_image(self, image: QImage | None) -> None:
        self.overlay.clear()
        self.item.setPixmap(QPixmap.fromImage(image) if image is not None else QPixmap())
        self.scene().setSceneRect(self.item.boundingRect())
        if self._fitted:
            self.fit()

    def show_regions(self, similarity) -> None:
        """Tint the picture by region (None: no map)."""
        self.overlay.show(self.item.boundingRect(), similarity)

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
        self.candidate = None  # the one shown: navigation goes from it, even once a re-rank has left it out
        self.record = None
        self.closing = False  # results that arrive after closing are dropped
        self._request = 0

        self.sketch = sketch
        self.sketch_pixels = qimage_to_rgb(sketch)
        self.regions = None  # QueryRegions of the photo shown, once computed
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
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.sha_label.setFont(mono)
        self.sha_label.setMinimumWidth(self.sha_label.fontMetrics().horizontalAdvance("0" * 64) + 12)  # whole
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
        self.attribute_rows: dict[str, QWidget] = {}
        for spec in workspace.schema.attributes:
            combo = QComboBox()
            combo.addItem(NOT_SET, None)
            for value in spec.values:
                combo.addItem(value, value)
            combo.setAccessibleName(f"Attribute {spec.name}")
            combo.currentIndexChanged.connect(self._edited)
            label = QLabel()
            label.setTextFormat(Qt.RichText)
            label.setWordWrap(True)  # who set a value and when: wrapped, never cut
            field = QWidget()
            line = QHBoxLayout(field)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(combo)
            line.addWidget(label, 1)
            name = QLabel(spec.name.replace("_", " "))
            name.setMinimumWidth(name.sizeHint().width())  # the layout squeezes the value, never the name
            self.attribute_form.addRow(name, field)
            self.attribute_combos[spec.name] = combo
            self.attribute_labels[spec.name] = label
            self.attribute_rows[spec.name] = field
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
        self.regions_button = QPushButton("Region map")
        self.regions_button.setCheckable(True)
        self.regions_button.setToolTip("Tint each region by how alike the model found the sketch and the photo there")
        self.regions_button.toggled.connect(self._regions_toggled)
        self.legend = RegionLegend()
        self.legend.setVisible(False)
        buttons_row = (fit_button, actual_button, zoom_in, zoom_out, self.previous_button, self.next_button)
        for button in (*buttons_row, self.regions_button):
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
        nav.addSpacing(16)
        nav.addWidget(self.regions_button)
        nav.addStretch(1)
        nav.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.title)
        side_layout.addLayout(info)
        side_layout.addWidget(self.attribute_box)
        self.video_box = VideoProvenanceBox()  # for a photo cut from video: the frame, where and when
        side_layout.addWidget(self.video_box)
        side_layout.addStretch(1)
        scroll = QScrollArea()  # a small screen scrolls the record; nothing in it is cut
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(side.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        body = QSplitter(Qt.Horizontal)
        body.addWidget(views)
        body.addWidget(scroll)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setCollapsible(1, False)
        layout = QVBoxLayout(self)
        layout.addWidget(body, 1)
        layout.addWidget(self.legend)
        layout.addLayout(nav)
        layout.addWidget(buttons)

        for keys, slot in (
            ((Qt.Key_Right, Qt.Key_PageDown, Qt.Key_N), self.show_next),
            ((Qt.Key_Left, Qt.Key_PageUp, Qt.Key_P), self.show_previous),
        ):
            for key in keys:
                QShortcut(QKeySequence(key), self, slot)
        self.resize(1200, 760)
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
    def _position(self) -> tuple[int, bool]:
        """The shown candidate's row in the model now, and whether it is still there; a candidate a
        re-rank left out sits where it would be by rank (the next one takes its row)."""
        if self.candidate is None:
            return self.row, True
        rows = self.model.candidates
        for i, c in enumerate(rows):
            if c.photo_id == self.candidate.photo_id:
                return i, True
        return sum(1 for c in rows if c.rank < self.candidate.rank), False

    def show_next(self) -> None:
        row, present = self._position()
        following = row + 1 if present else row
        if following < self.model.total():
            self.show_row(following)

    def show_previous(self) -> None:
        row, _present = self._position()
        if row > 0:
            self.show_row(row - 1)

    def show_row(self, row: int) -> None:
        candidate = self.model.candidate(row)
        if candidate is None:
            return
        self.row, self.candidate = row, candidate
        self.model.ensure_shown(row)
        self._request += 1
        request = self._request
        self.title.setText(f"<b>#{candidate.rank}</b> of {self.model.total()} · score {candidate.score:.3f}")
        self.previous_button.setEnabled(row > 0)
        self.next_button.setEnabled(row + 1 < self.model.total())
        self.status.setText("Loading photo…")
        self.regions = None
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
        if self.regions_button.isChecked():
            self._compute_regions()

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
        self._draw_regions()

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

    # -- region map --------------------------------------------------------------------------
    def _regions_toggled(self, on: bool) -> None:
        self.legend.setVisible(on)
        if on and self.regions is None:
            self._compute_regions()
        self._draw_regions()

    def _compute_regions(self) -> None:
        """Core's figures for the photo shown (the sketch embedded once more, off the GUI thread)."""
        if self.candidate is None:
            return
        workspace, pixels, photo_id, request = (
            self.workspace,
            self.sketch_pixels,
            self.candidate.photo_id,
            self._request,
        )

        def compare(task):
            return request, workspace.regions.for_pixels(pixels, [photo_id])

        self.runner.submit(
            compare,
            pool="search",
            on_result=self._regions_ready,
            on_error=self._load_failed,
            name="regions",
            owner=self,
        )

    def _regions_ready(self, result) -> None:
        request, regions = result
        if request != self._request:
            return
        self.regions = regions
        self._draw_regions()

    def region_similarity(self):
        """The figures drawn now (None: the map is off, not ready or not available)."""
        if not self.regions_button.isChecked() or self.regions is None or self.candidate is None:
            return None
        found = self.regions.by_photo.get(self.candidate.photo_id)
        return found.similarity if found is not None else None

    def _draw_regions(self) -> None:
        on = self.regions_button.isChecked()
        regions = self.regions if on else None
        similarity = self.region_similarity()
        view = regions.sketch_view if regions is not None and regions.sketch_view is not None else None
        self.sketch_view.set_image(rgb_to_qimage(view) if view is not None else self.sketch)
        self.sketch_view.show_regions(similarity)
        if self.record is not None:
            self.photo_view.show_regions(similarity)
        if regions is not None:
            found = regions.by_photo.get(self.candidate.photo_id) if self.candidate else None
            why = regions.unavailable or (found.unavailable if found is not None else "")
            self.legend.describe(
                found.model_name if found is not None else "", bool(similarity and similarity.mirrored), why
            )
        elif on:
            self.legend.source.setText("Computing the region map…")

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
