"""The main window: canvas on the left, ranked candidates on the right, attribute filters and the
gallery in docks, model and gallery in the status bar. The workspace opens in the background, so
the window appears at once; every call into it runs in a worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.about import show_about
from app.candidates_model import THUMB_SIZE, CandidatesModel, ThumbnailCache
from app.canvas import SketchCanvas
from app.comparison import ComparisonDialog
from app.filters import FilterPanel
from app.gallery_panel import GalleryPanel
from app.import_dialog import GalleryJobDialog, ImportDialog, IndexingDialog
from app.live_search import LiveSearch
from app.settings import MAX_TOP_K, Preferences, SettingsDialog
from app.strokes import SketchDocument
from app.workers import TaskRunner

log = logging.getLogger(__name__)

SKETCH_FILTER = "SketchSearch sketch (*.json *.png)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"


@dataclass
class LaunchOptions:
    """Command-line choices; each one set overrides the saved preference for this run."""

    data_dir: Path | None = None
    model_dir: Path | None = None
    device: str | None = None


def describe_model(info) -> str:
    provenance = info.provenance or {}
    kind = provenance.get("kind") or ("trained" if provenance.get("data") else "")
    return f"{info.name}" + (f" ({kind})" if kind else "")


def describe_device(device: str) -> str:
    return "GPU" + (f" ({device})" if device != "cuda" else "") if device.startswith("cuda") else "CPU"


class MainWindow(QMainWindow):
    workspaceReady = Signal()
    errorShown = Signal(str)

    def __init__(self, options: LaunchOptions | None = None, settings: QSettings | None = None, workspace=None):
        super().__init__()
        self.setWindowTitle("SketchSearch")
        self.options = options or LaunchOptions()
        self.settings = settings or QSettings()
        self.preferences = Preferences.load(self.settings)
        self.workspace = None
        self._owns_workspace = False
        self._model_key: tuple[str, str] | None = None
        self._job_dialog: GalleryJobDialog | None = None
        self._adapt_dialog = None  # Model → Adapt to this gallery…, while it is open
        self._comparisons: list[ComparisonDialog] = []
        self.last_error = ""
        self.runner = TaskRunner(self)

        self.document = SketchDocument(parent=self)
        self.canvas = SketchCanvas(self.document)
        self.thumbnails = ThumbnailCache(self.runner, parent=self)
        self.candidates = CandidatesModel(self.thumbnails, self)
        self.live = LiveSearch(self.runner, self.document, self)
        self.live.top_k = self.preferences.top_k
        self.filters = FilterPanel()
        self.gallery = GalleryPanel()

        self._build_candidates_panel()
        self._build_actions()
        self._build_layout()
        self._build_status_bar()
        self._connect()
        self.resize(1280, 820)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

        if workspace is not None:
            self._workspace_ready(workspace, owned=False)
        else:
            self.open_workspace()

    # -- construction ------------------------------------------------------------------------
    def _build_candidates_panel(self) -> None:
        self.view = QListView()
        self.view.setViewMode(QListView.IconMode)
        self.view.setModel(self.candidates)
        self.view.setIconSize(THUMB_SIZE)
        self.view.setGridSize(QSize(THUMB_SIZE.width() + 32, THUMB_SIZE.height() + 40))
        self.view.setResizeMode(QListView.Adjust)
        self.view.setMovement(QListView.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(True)
        self.view.setSelectionMode(QListView.SingleSelection)
        self.view.setAccessibleName("Candidates")
        self.view.setToolTip("Double-click (or Enter) to compare a candidate with the sketch")
        self.top_k = QSpinBox()
        self.top_k.setRange(1, MAX_TOP_K)
        self.top_k.setValue(self.preferences.top_k)
        self.top_k.setAccessibleName("Top K")
        self.search_state = QLabel("Draw a sketch to search.")
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Candidates</b>"))
        header.addStretch(1)
        header.addWidget(self.search_state)
        header.addSpacing(12)
        header.addWidget(QLabel("Top K"))
        header.addWidget(self.top_k)
        self.candidates_panel = QWidget()
        layout = QVBoxLayout(self.candidates_panel)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{text.replace('…', '').replace('&', '')} — {tip}")
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        stack = self.document.undo_stack
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.open_sketch_action = self._action(
            "&Open sketch…", self.choose_sketch_to_open, "Ctrl+Shift+O", "open a sketch saved by SketchSearch"
        )
        self.import_sketch_action = self._action(
            "&Import scanned sketch…",
            self.choose_scan,
            "Ctrl+O",
            "a scan or photo of a paper sketch becomes the background",
        )
        self.save_sketch_action = self._action(
            "&Save sketch…", self.choose_save_path, QKeySequence.Save, "save the strokes (.json) and a picture (.png)"
        )
        self.import_folder_action = self._action(
            "Import &folder…", self.choose_import_folder, "Ctrl+I", "add the photos in a folder to the gallery"
        )
        self.settings_action = self._action("Se&ttings…", self.edit_settings)
        self.about_action = self._action("&About SketchSearch…", self.show_about)
        self.quit_action = self._action("&Quit", self.close, QKeySequence.Quit)
        self.clear_action = self._action("C&lear sketch", self.document.clear, "Ctrl+Backspace", "start afresh")
        self.pen_action = self._action("&Pen", lambda: self.canvas.set_tool("pen"), "B", "draw")
        self.eraser_action = self._action("&Eraser", lambda: self.canvas.set_tool("eraser"), "E", "erase strokes")
        tools = QActionGroup(self)
        for action in (self.pen_action, self.eraser_action):
            action.setCheckable(True)
            tools.addAction(action)
        self.pen_action.setChecked(True)
        self.bigger_action = self._action("&Bigger brush", self.canvas.grow_pen, "]")
        self.smaller_action = self._action("&Smaller brush", self.canvas.shrink_pen, "[")
        self.zoom_in_action = self._action("Zoom &in", lambda: self.canvas.zoom_by(1.25), QKeySequence.ZoomIn)
        self.zoom_out_action = self._action("Zoom &out", lambda: self.canvas.zoom_by(0.8), QKeySequence.ZoomOut)
        self.fit_action = self._action("&Fit sketch", self.canvas.fit, "Ctrl+0")
        self.compare_action = self._action("&Compare selected", self._compare_selected, "Return")
        self.compare_action.setShortcutContext(Qt.WidgetShortcut)
        self.view.addAction(self.compare_action)

        menu = self.menuBar().addMenu("&File")
        for action in (self.open_sketch_action, self.import_sketch_action, self.save_sketch_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.import_folder_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        menu = self.menuBar().addMenu("&Edit")
        for action in (self.undo_action, self.redo_action, self.clear_action):
            menu.addAction(action)
        menu.addSeparator()
        for action in (self.pen_action, self.eraser_action, self.bigger_action, self.smaller_action):
            menu.addAction(action)
        self.view_menu = self.menuBar().addMenu("&View")
        for action in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            self.view_menu.addAction(action)
        self.view_menu.addSeparator()
        self._build_model_menu()
        self.menuBar().addMenu("&Help").addAction(self.about_action)

        toolbar = QToolBar("Sketch")
        toolbar.setObjectName("sketch-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for action in (self.pen_action, self.eraser_action):
            toolbar.addAction(action)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 64)
        self.width_spin.setValue(int(self.canvas.pen_width))
        self.width_spin.setSuffix(" px")
        self.width_spin.setToolTip("Brush size ([ and ])")
        self.width_spin.setAccessibleName("Brush size")
        toolbar.addWidget(self.width_spin)
        toolbar.addSeparator()
        for action in (self.undo_action, self.redo_action, self.clear_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.import_sketch_action, self.save_sketch_action, self.import_folder_action):
            toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _build_model_menu(self) -> None:
        self.adapt_action = self._action(
            "&Adapt to this gallery…",
            lambda: self.adapt_to_gallery(),
            tip="train a copy of the model on this gallery, no labels",
        )
        self.use_model_action = self._action("&Use…", self.choose_model, tip="switch to another installed model")
        menu = self.menuBar().addMenu("&Model")
        menu.addAction(self.adapt_action)
        menu.addAction(self.use_model_action)

    def _build_layout(self) -> None:
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.canvas)
        splitter.addWidget(self.candidates_panel)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([420, 620])
        self.setCentralWidget(splitter)
        self.filters_dock = QDockWidget("Filters", self)
        self.filters_dock.setObjectName("filters-dock")
        scroll = QScrollArea()
        scroll.setWidget(self.filters)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.filters_dock.setWidget(scroll)
        self.addDockWidget(Qt.RightDockWidgetArea, self.filters_dock)
        self.gallery_dock = QDockWidget("Gallery", self)
        self.gallery_dock.setObjectName("gallery-dock")
        self.gallery_dock.setWidget(self.gallery)
        self.addDockWidget(Qt.RightDockWidgetArea, self.gallery_dock)
        self.resizeDocks([self.filters_dock, self.gallery_dock], [560, 200], Qt.Vertical)
        self.resizeDocks([self.filters_dock], [340], Qt.Horizontal)
        self.view_menu.addAction(self.filters_dock.toggleViewAction())
        self.view_menu.addAction(self.gallery_dock.toggleViewAction())

    def _build_status_bar(self) -> None:
        self.model_label = QLabel("Loading model…")
        self.device_label = QLabel("")
        self.gallery_label = QLabel("")
        for label in (self.model_label, self.device_label, self.gallery_label):
            label.setContentsMargins(6, 0, 6, 0)
            self.statusBar().addPermanentWidget(label)

    def _connect(self) -> None:
        self.canvas.toolChanged.connect(self._tool_changed)
        self.canvas.penWidthChanged.connect(lambda w: self.width_spin.setValue(round(w)))
        self.width_spin.valueChanged.connect(lambda v: self.canvas.set_pen_width(v))
        self.live.results.connect(self._show_results)
        self.live.busy.connect(self._search_busy)
        self.live.failed.connect(self._search_failed)
        self.live.cleared.connect(self._search_cleared)
        self.filters.changed.connect(self._filters_changed)
        self.top_k.valueChanged.connect(self._top_k_changed)
        self.view.doubleClicked.connect(lambda index: self.open_comparison(index.row()))
        self.gallery.importRequested.connect(self.choose_import_folder)
        self.gallery.rescanRequested.connect(lambda folder: self.start_import([folder]))
        self.gallery.removeRequested.connect(self.confirm_remove_folder)
        self.gallery.pruneRequested.connect(self.prune_missing)

    # -- workspace ---------------------------------------------------------------------------
    def _data_dir(self) -> Path | None:
        if self.options.data_dir:
            return Path(self.options.data_dir)
        return Path(self.preferences.data_dir) if self.preferences.data_dir else None

    def _model_dir(self) -> Path | None:
        """The command line's model, else the one last chosen with Model → Use… (if still there)."""
        if self.options.model_dir:
            return Path(self.options.model_dir)
        saved = str(self.settings.value("model_dir", "") or "")
        return Path(saved) if saved and Path(saved).is_dir() else None

    def _device(self) -> str | None:
        return self.options.device or (None if self.preferences.device == "auto" else self.preferences.device)

    def open_workspace(self) -> None:
        """(Re)open the workspace in the background: the window stays usable, searches wait."""
        old, owned = self.workspace, self._owns_workspace
        self._set_workspace(None)
        data_dir, model_dir, device = self._data_dir(), self._model_dir(), self._device()
        key = (str(model_dir or ""), device or "auto")
        reuse = old.model if old is not None and key == self._model_key else None
        self._model_key = key
        runner = self.runner

        def open_it(task):
            from core.workspace import Workspace

            if old is not None:  # nothing may be using it while it closes
                runner.pools["search"].waitForDone()
                runner.pools["io"].waitForDone()
                if owned:
                    old.close()
            if reuse is not None:
                return Workspace(data_dir, model=reuse)
            return Workspace(data_dir, model_dir, device)

        self.model_label.setText("Loading model…")
        self.statusBar().showMessage("Opening the gallery and loading the model…")
        self.runner.submit(
            open_it,
            pool="long",
            on_result=lambda ws: self._workspace_ready(ws, owned=True),
            on_error=self._workspace_failed,
            name="open workspace",
        )

    def show_about(self):
        return show_about(self, self.workspace.model_info() if self.workspace is not None else None)

    def _set_workspace(self, workspace) -> None:
        self.workspace = workspace
        self.thumbnails.set_workspace(workspace)
        self.live.set_workspace(workspace)
        enabled = workspace is not None
        self.gallery.set_enabled(enabled)
        self.import_folder_action.setEnabled(enabled)
        self.adapt_action.setEnabled(enabled)
        self.use_model_action.setEnabled(enabled)

    def _workspace_ready(self, workspace, owned: bool) -> None:
        self._owns_workspace = owned
        info = workspace.model_info()
        self.filters.set_schema(workspace.schema, predicted=info.attributes_trained)
        self.model_label.setText(f"Model: {describe_model(info)}")
        self.model_label.setToolTip(
            "\n".join(f"{k}: {v}" for k, v in (info.provenance or {}).items()) + f"\nsha256: {info.sha256}"
        )
        self.device_label.setText(describe_device(info.device))
        self.statusBar().showMessage(f"Gallery {workspace.data_dir}", 5000)
        self.live.where, self.live.min_confidence = self.filters.where(), self.filters.min_confidence()
        self._set_workspace(workspace)
        self.refresh_gallery()
        self._index_if_needed(workspace)
        self.workspaceReady.emit()

    def _index_if_needed(self, workspace) -> None:
        """A gallery imported with another model has no embeddings for this one: index it now (once
        per opening), rather than leave its photos out of every search."""

        def count(task):
            return workspace.count_unembedded()

        def start(unembedded: int) -> None:
            if unembedded and workspace is self.workspace and not self._job_running():
                self._start_job(IndexingDialog(self.runner, workspace, unembedded, self))

        self.runner.submit(count, pool="io", on_result=start, on_error=self._status_error, name="count unindexed")

    def _workspace_failed(self, message: str) -> None:
        self.model_label.setText("No model loaded")
        self.show_error(f"The gallery could not be opened: {message}", "Cannot open the gallery")

    def refresh_gallery(self) -> None:
        if self.workspace is None:
            return
        workspace = self.workspace

        def read(task):
            return workspace.stats(), workspace.catalogue.folders()

        self.runner.submit(read, pool="io", on_result=self._gallery_read, on_error=self._status_error, name="stats")

    def _gallery_read(self, result) -> None:
        stats, folders = result
        self.gallery.set_folders(folders)
        text = f"Gallery: {stats.photos} photo(s)"
        if stats.missing:
            text += f", {stats.missing} missing"
        self.gallery_label.setText(text)
        self.gallery_label.setToolTip(
            f"{stats.indexed} indexed · data folder {self.workspace.data_dir}" if self.workspace else ""
        )

    # -- search ------------------------------------------------------------------------------
    def _filters_changed(self) -> None:
        self.live.set_filters(self.filters.where(), self.filters.min_confidence())

    def _top_k_changed(self, value: int) -> None:
        self.preferences.top_k = value
        self.live.set_top_k(value)

    def _show_results(self, _request: int, candidates) -> None:
        self.candidates.set_candidates(candidates)
        filtered = " (filtered)" if self.live.where else ""
        self.search_state.setText(f"{len(candidates)} candidate(s){filtered} in {self.live.last_seconds:.2f} s")

    def _search_busy(self, busy: bool) -> None:
        if busy:
            self.search_state.setText("Searching…")

    def _search_failed(self, message: str) -> None:
        self.search_state.setText("Search failed")
        self._status_error(message)

    def _search_cleared(self) -> None:
        self.candidates.clear()
        self.search_state.setText("Draw a sketch to search.")

    # -- sketch files ------------------------------------------------------------------------
    def _tool_changed(self, tool: str) -> None:
        (self.pen_action if tool == "pen" else self.eraser_action).setChecked(True)

    def choose_sketch_to_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open sketch", "", SKETCH_FILTER)
        if path:
            self.open_sketch(path)

    def open_sketch(self, path: str | Path) -> bool:
        try:
            self.document.load(path)
        except Exception as exc:  # noqa: BLE001
            from app.workers import user_message

            self.show_error(user_message(exc), "Cannot open the sketch")
            return False
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def choose_save_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save sketch", "sketch.json", SKETCH_FILTER)
        if path:
            self.save_sketch(path)

    def save_sketch(self, path: str | Path) -> bool:
        try:
            png, vectors = self.document.save(path)
        except Exception as exc:  # noqa: BLE001
            from app.workers import user_message

            self.show_error(user_message(exc), "Cannot save the sketch")
            return False
        self.statusBar().showMessage(f"Saved {vectors.name} and {png.name} in {vectors.parent}", 5000)
        return True

    def choose_scan(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import scanned sketch", "", IMAGE_FILTER)
        if path:
            self.import_scan(path)

    def import_scan(self, path: str | Path) -> None:
        """Greyscale, auto-contrast and crop the image in the background; it becomes the background."""

        def prepare(task):
            from app.scan_import import load_scan

            return load_scan(path)

        self.statusBar().showMessage(f"Importing {path}…")
        self.runner.submit(
            prepare,
            pool="io",
            on_result=self._scan_ready,
            on_error=lambda m: self.show_error(m, "Cannot import the sketch"),
            name="scan",
        )

    def _scan_ready(self, grey) -> None:
        self.document.set_background(grey)
        self.statusBar().showMessage("Sketch imported: draw over it to refine it", 5000)

    # -- gallery -----------------------------------------------------------------------------
    def choose_import_folder(self) -> None:
        if self.workspace is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Import photos from folder", str(Path.home()))
        if folder:
            self.start_import([folder])

    def start_import(self, roots) -> GalleryJobDialog | None:
        if self.workspace is None:
            self.show_error("The gallery is still opening; try again in a moment.", "Import")
            return None
        if self._job_running():
            self._job_dialog.raise_()
            self.statusBar().showMessage(f"Wait for the running job: {self._job_dialog.windowTitle()}", 5000)
            return self._job_dialog
        return self._start_job(ImportDialog(self.runner, self.workspace, [str(r) for r in roots], self))

    def _start_job(self, dialog: GalleryJobDialog) -> GalleryJobDialog:
        """One gallery job (import or indexing) at a time, shown in its progress dialog."""
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.finished_import.connect(lambda summary: self._job_finished(dialog, summary))
        dialog.destroyed.connect(lambda: self._job_dialog is dialog and setattr(self, "_job_dialog", None))
        self._job_dialog = dialog
        dialog.show()
        return dialog

    def _job_running(self) -> bool:
        return self._job_dialog is not None and self._job_dialog.running()

    def _job_finished(self, dialog: GalleryJobDialog, summary) -> None:
        if summary is not None:
            self.statusBar().showMessage(dialog.describe(summary), 10000)
        self.refresh_gallery()
        self.live.rerank()

    def confirm_remove_folder(self, folder: str) -> None:
        answer = QMessageBox.question(
            self, "Remove folder", f"Remove the photos of\n{folder}\nfrom the gallery? The files are not touched."
        )
        if answer == QMessageBox.Yes:
            self.remove_folder(folder)

    def remove_folder(self, folder: str) -> None:
        workspace = self.workspace
        if workspace is None:
            return
        self.runner.submit(
            lambda task: workspace.remove_folder(folder),
            pool="long",
            on_result=lambda n: self._gallery_changed(f"Removed {n} photo(s) of {folder}"),
            on_error=lambda m: self.show_error(m, "Cannot remove the folder"),
            name="remove folder",
        )

    def prune_missing(self) -> None:
        workspace = self.workspace
        if workspace is None:
            return
        self.runner.submit(
            lambda task: workspace.prune_missing(),
            pool="long",
            on_result=lambda n: self._gallery_changed(f"Forgot {n} missing photo(s)"),
            on_error=lambda m: self.show_error(m, "Cannot forget missing photos"),
            name="prune",
        )

    def _gallery_changed(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)
        self.refresh_gallery()
        self.live.rerank()

    # -- models ------------------------------------------------------------------------------
    def adapt_to_gallery(self, settings=None):
        """Model → Adapt to this gallery…: one adaptation at a time, in its own dialog."""
        from app.adapt_dialog import AdaptDialog

        workspace = self.workspace
        if workspace is None or workspace.model.folder is None:
            return None
        if self._adapt_dialog is not None and self._adapt_dialog.running():
            self._adapt_dialog.raise_()
            return self._adapt_dialog
        dialog = AdaptDialog(
            self.runner, workspace.model.folder, workspace.data_dir, workspace.model.sha256, settings, self
        )
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.useModel.connect(self.use_model)
        dialog.destroyed.connect(lambda: self._adapt_dialog is dialog and setattr(self, "_adapt_dialog", None))
        self._adapt_dialog = dialog
        dialog.show()
        return dialog

    def choose_model(self) -> None:
        from app.adapt_dialog import ModelChooser

        if self.workspace is None:
            return
        dialog = ModelChooser(self.workspace.data_dir, self.workspace.model.sha256, self)
        if dialog.exec() == ModelChooser.Accepted and dialog.chosen() is not None:
            self.use_model(dialog.chosen().path)

    def use_model(self, folder) -> None:
        """Reopen the gallery with the model in ``folder`` (remembered for the next start); photos
        without an embedding for it are indexed in the background as for any model change."""
        self.options.model_dir = Path(folder)
        if self.workspace is not None:  # the same gallery, whatever opened it
            self.options.data_dir = self.workspace.data_dir
        self.settings.setValue("model_dir", str(folder))
        self.settings.sync()
        self.open_workspace()

    # -- comparison --------------------------------------------------------------------------
    def _compare_selected(self) -> None:
        index = self.view.currentIndex()
        if index.isValid():
            self.open_comparison(index.row())

    def open_comparison(self, row: int) -> ComparisonDialog | None:
        if self.workspace is None or self.candidates.candidate(row) is None:
            return None
        dialog = ComparisonDialog(self.runner, self.workspace, self.candidates, self.document.render(), row, self)
        dialog.attributesSaved.connect(self._attributes_saved)
        dialog.failed.connect(self._status_error)
        dialog.destroyed.connect(lambda: self._comparisons.remove(dialog) if dialog in self._comparisons else None)
        self._comparisons.append(dialog)
        dialog.show()
        return dialog

    def _attributes_saved(self, photo_id: int, attributes: dict) -> None:
        self.candidates.replace_attributes(photo_id, attributes)
        self.statusBar().showMessage("Attribute correction saved", 5000)
        if self.live.where:
            self.live.rerank()

    # -- settings and errors -----------------------------------------------------------------
    def edit_settings(self) -> None:
        from core.paths import default_data_dir

        dialog = SettingsDialog(self.preferences, default_data_dir(), self)
        if dialog.exec() != SettingsDialog.Accepted:
            return
        new = dialog.preferences()
        reopen = (new.data_dir, new.device) != (self.preferences.data_dir, self.preferences.device)
        self.preferences = new
        self.preferences.save(self.settings)
        self.top_k.setValue(new.top_k)
        if reopen:
            self.options.data_dir = None  # the new choice wins over the command line's
            self.options.device = None
            self.open_workspace()

    def show_error(self, message: str, title: str = "SketchSearch") -> None:
        """A message box that does not block (the window keeps working) and a status bar line."""
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.errorShown.emit(message)

    def _status_error(self, message: str) -> None:
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        self.errorShown.emit(message)

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("top_k", self.preferences.top_k)
        self.settings.sync()
        for dialog in list(self._comparisons):
            dialog.close()
        if self._job_running():
            self.statusBar().showMessage(f"Stopping: {self._job_dialog.windowTitle()}…")
        self.live.workspace = None
        self.runner.shutdown()
        if self._owns_workspace and self.workspace is not None:
            self.workspace.close()
        self.workspace = None
        super().closeEvent(event)
