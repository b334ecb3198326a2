"""The main window: canvas on the left, ranked candidates on the right, attribute filters and the
gallery in docks, model and gallery in the status bar. The workspace opens in the background, so
the window appears at once; every call into it runs in a worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, QStandardPaths, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.about import show_about
from app.candidates_model import NOT_REVIEWED, THUMB_SIZE, CandidatesModel, ThumbnailCache
from app.canvas import SketchCanvas
from app.casework import CaseRecorder, NewCaseDialog
from app.comparison import ComparisonDialog
from app.filters import FilterPanel
from app.gallery_panel import GalleryPanel
from app.import_dialog import GalleryJobDialog, ImportDialog, IndexingDialog
from app.live_search import LiveSearch
from app.settings import MAX_TOP_K, Preferences, SettingsDialog
from app.strokes import SketchDocument
from app.workers import TaskRunner
from core.casework.records import ReviewMark
from core.casework.weak import weak_result_warning
from core.gallery.attribute_sheet import DEFAULT_ID_PATTERN, sheet_key_column
from core.model.loading import installed

log = logging.getLogger(__name__)

SKETCH_FILTER = "SketchSearch sketch (*.json *.png)"
REPORT_FILTER = "PDF report (*.pdf)"
MARK_FILTERS = (
    ("All candidates", None),
    ("Possible leads", ReviewMark.POSSIBLE),
    ("Excluded", ReviewMark.EXCLUDED),
    ("Not reviewed", NOT_REVIEWED),
)
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


# adaptation trains with torch; the CPU package runs the model on ONNX Runtime and carries no torch
TRAINING_INSTALLED = installed("torch")


RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch"}


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
        self._settings_dialog: SettingsDialog | None = None
        self.last_error = ""
        self._nothing_to_search: str | None = None  # why the gallery can find nothing (from its stats)
        self.runner = TaskRunner(self)

        self.document = SketchDocument(parent=self)
        self.canvas = SketchCanvas(self.document)
        self.thumbnails = ThumbnailCache(self.runner, parent=self)
        self.candidates = CandidatesModel(self.thumbnails, self)
        self.live = LiveSearch(self.runner, self.document, self)
        self.live.top_k = self.preferences.top_k
        self.recorder = CaseRecorder(self.runner, self)
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
        # room for the three lines under each thumbnail: rank and score, file name and id, caption
        self.view.setGridSize(QSize(THUMB_SIZE.width() + 60, THUMB_SIZE.height() + 64))
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
        self.mark_filter = QComboBox()
        for text, _mark in MARK_FILTERS:
            self.mark_filter.addItem(text)
        self.mark_filter.setAccessibleName("Show candidates")
        self.mark_filter.setToolTip("Show all candidates, or only those with one review mark")
        self.weak_warning = QLabel()
        self.weak_warning.setWordWrap(True)
        self.weak_warning.setStyleSheet("color: #a04000;")
        self.weak_warning.hide()
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Candidates</b>"))
        header.addWidget(self.mark_filter)
        header.addStretch(1)
        header.addWidget(self.search_state)
        header.addSpacing(12)
        header.addWidget(QLabel("Top K"))
        header.addWidget(self.top_k)
        self.empty_gallery = self._build_empty_gallery_guide()
        self.results_stack = QStackedWidget()
        self.results_stack.addWidget(self.view)
        self.results_stack.addWidget(self.empty_gallery)
        self.candidates_panel = QWidget()
        layout = QVBoxLayout(self.candidates_panel)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(self.weak_warning)
        layout.addWidget(self.results_stack, 1)

    def _build_empty_gallery_guide(self) -> QWidget:
        """What a first-time user sees instead of a blank grid: what to do, and the button to do it."""
        guide = QWidget()
        text = QLabel(
            "<h3>The gallery is empty</h3>"
            "<p>Import a folder of photos first: SketchSearch then ranks them against your sketch.</p>"
            "<p>Photos stay where they are; the gallery keeps a thumbnail and an index of each.</p>"
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignCenter)
        self.empty_import_button = QPushButton("Import a folder of photos…")
        self.empty_import_button.setAccessibleName("Import a folder of photos")
        self.empty_import_button.clicked.connect(self.choose_import_folder)
        layout = QVBoxLayout(guide)
        layout.addStretch(1)
        layout.addWidget(text)
        layout.addWidget(self.empty_import_button, 0, Qt.AlignHCenter)
        layout.addStretch(2)
        return guide

    def gallery_is_empty(self) -> bool:
        return self.results_stack.currentWidget() is self.empty_gallery

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
        self.import_attributes_action = self._action(
            "Import &attributes…",
            self.choose_attribute_sheet,
            tip="read attribute values from a CSV sheet keyed by path, file name or person id",
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
        self.possible_action = self._action(
            "Mark as &possible lead", lambda: self.review_selected(ReviewMark.POSSIBLE), "P", "recorded with your name"
        )
        self.exclude_action = self._action(
            "Mark as e&xcluded", lambda: self.review_selected(ReviewMark.EXCLUDED), "X", "looked at and ruled out"
        )
        self.clear_mark_action = self._action(
            "C&lear mark", lambda: self.review_selected(ReviewMark.CLEAR), "U", "back to not reviewed"
        )
        self.note_mark_action = self._action("Mark with a &note…", self._review_with_note)
        self.view.setContextMenuPolicy(Qt.ActionsContextMenu)
        for action in (self.possible_action, self.exclude_action, self.clear_mark_action, self.note_mark_action):
            action.setShortcutContext(Qt.WidgetShortcut)
            self.view.addAction(action)
        self.new_case_action = self._action("&New case…", self.choose_new_case, "Ctrl+Shift+N", "start a case")
        self.open_case_action = self._action("&Open case…", self.choose_case_to_open, None, "work in a case")
        self.close_case_action = self._action(
            "&Close case", self.recorder.close_case, None, "searches go under no case"
        )
        self.export_report_action = self._action(
            "&Export report…", self.choose_report_path, "Ctrl+Shift+E", "the case's searches and marks as PDF"
        )

        menu = self.menuBar().addMenu("&File")
        for action in (self.open_sketch_action, self.import_sketch_action, self.save_sketch_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.import_folder_action)
        menu.addAction(self.import_attributes_action)
        menu.addSeparator()
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        menu = self.menuBar().addMenu("&Case")
        for action in (self.new_case_action, self.open_case_action, self.close_case_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.export_report_action)
        menu.addSeparator()
        for action in (self.possible_action, self.exclude_action, self.clear_mark_action, self.note_mark_action):
            menu.addAction(action)
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
            tip="train a copy of the model on this gallery, no labels"
            if TRAINING_INSTALLED
            else "adaptation trains the network with torch, which this package leaves out: "
            "use the GPU package (sketchsearch-gpu) or the source install",
        )
        self.use_model_action = self._action("&Use…", self.choose_model, tip="switch to another installed model")
        menu = self.menuBar().addMenu("&Model")
        menu.addAction(self.adapt_action)
        menu.addAction(self.use_model_action)
        self.menuBar().addMenu("&Help").addAction(self.about_action)  # last, as on every desktop

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
        self.case_label = QLabel("")
        self._case_changed(None)
        for label in (self.case_label, self.model_label, self.device_label, self.gallery_label):
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
        self.live.shown.connect(self.recorder.shown)
        self.document.changed.connect(self.recorder.sketch_changed)
        self.recorder.marksChanged.connect(self.candidates.set_marks)
        self.recorder.caseChanged.connect(self._case_changed)
        self.recorder.recorded.connect(self._search_recorded)
        self.recorder.reportWritten.connect(
            lambda path: self.statusBar().showMessage(f"Report written to {path}", 10000)
        )
        self.recorder.failed.connect(self._status_error)
        self.mark_filter.currentIndexChanged.connect(
            lambda i: self.candidates.set_mark_filter(MARK_FILTERS[i][1] if i >= 0 else None)
        )
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
        reuse = old.loaded_model() if old is not None and key == self._model_key else None
        self._model_key = key
        runner = self.runner

        def open_it(task):
            from core.workspace import Workspace

            if old is not None:  # nothing may be using it while it closes
                runner.pools["search"].waitForDone()
                runner.pools["io"].waitForDone()
                runner.pools["record"].waitForDone()
                if owned:
                    old.close()
            if reuse is not None:
                return Workspace(data_dir, model=reuse)
            workspace = Workspace(data_dir, model_dir, device)
            workspace.model  # noqa: B018 - load the network now, so that the first sketch searches at once
            return workspace

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
        self.recorder.set_workspace(workspace)
        enabled = workspace is not None
        for action in (self.new_case_action, self.open_case_action):
            action.setEnabled(enabled)
        self.gallery.set_enabled(enabled)
        self.import_folder_action.setEnabled(enabled)
        self.import_attributes_action.setEnabled(enabled)
        self.empty_import_button.setEnabled(enabled)
        self.adapt_action.setEnabled(enabled and TRAINING_INSTALLED)
        self.use_model_action.setEnabled(enabled)

    def _workspace_ready(self, workspace, owned: bool) -> None:
        self._owns_workspace = owned
        info = workspace.model_info()
        self.filters.set_schema(workspace.schema, predicted=info.attributes_trained)
        self.model_label.setText(f"Model: {describe_model(info)}")
        self.model_label.setToolTip(
            "\n".join(f"{k}: {v}" for k, v in (info.provenance or {}).items()) + f"\nsha256: {info.sha256}"
        )
        runtime = RUNTIME_NAMES.get(info.runtime)
        self.device_label.setText(describe_device(info.device) + (f" · {runtime}" if runtime else ""))
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
            return workspace.stats(), workspace.folders()

        self.runner.submit(read, pool="io", on_result=self._gallery_read, on_error=self._status_error, name="stats")

    def _gallery_read(self, result) -> None:
        stats, folders = result
        self._nothing_to_search = stats.nothing_to_search()
        self._say_if_nothing_to_search()
        self.gallery.set_folders(folders)
        self.results_stack.setCurrentWidget(self.empty_gallery if stats.photos == 0 else self.view)
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
        warning = weak_result_warning([c.score for c in candidates])
        self.weak_warning.setText(warning)
        self.weak_warning.setVisible(bool(warning))
        self._say_if_nothing_to_search()

    def _say_if_nothing_to_search(self) -> None:
        """An empty result of an empty (or unindexed) gallery says why, whichever arrives first."""
        if self._nothing_to_search and self.candidates.total() == 0 and not self.document.is_empty():
            self.search_state.setText(f"Nothing to search: {self._nothing_to_search}")

    def _search_busy(self, busy: bool) -> None:
        if busy:
            self.search_state.setText("Searching…")

    def _search_failed(self, message: str) -> None:
        self.search_state.setText("Search failed")
        self._status_error(message)

    def _search_cleared(self) -> None:
        self.candidates.clear()
        self.weak_warning.hide()
        self.search_state.setText("Draw a sketch to search.")

    # -- casework ----------------------------------------------------------------------------
    def _case_changed(self, case) -> None:
        if case is None:
            self.case_label.setText("No case")
            self.case_label.setToolTip("Searches are recorded under 'no case'. Case → New case… or Open case…")
            self.setWindowTitle("SketchSearch — no case")
        else:
            self.case_label.setText(f"Case {case.number}")
            self.case_label.setToolTip(
                f"{case.title}\noperator {case.operator}\nopened {case.opened_at:%Y-%m-%d %H:%M}"
            )
            self.setWindowTitle(f"SketchSearch — case {case.number}" + (f": {case.title}" if case.title else ""))
        self.close_case_action.setEnabled(case is not None)
        self.export_report_action.setEnabled(case is not None)

    def _search_recorded(self, search_id: int, revision: int) -> None:
        where = f"case {self.recorder.case.number}" if self.recorder.case else "no case"
        what = f"search {search_id}" + (f" (revision {revision})" if revision > 1 else "")
        self.statusBar().showMessage(f"Recorded {what} under {where}", 5000)

    def choose_new_case(self) -> None:
        if self.workspace is None:
            return
        dialog = NewCaseDialog(self.workspace.operator, self)
        if dialog.exec() == NewCaseDialog.Accepted:
            self.recorder.new_case(
                dialog.number.text().strip(),
                dialog.title.text().strip(),
                dialog.operator.text().strip(),
                dialog.notes.toPlainText().strip(),
            )

    def choose_case_to_open(self) -> None:
        def choose(cases) -> None:
            if not cases:
                self.show_error("There is no case yet: Case → New case… starts one.", "Open case")
                return
            labels = [f"{c.number} — {c.title}" + ("" if c.is_open else " (closed)") for c in cases]
            label, ok = QInputDialog.getItem(self, "Open case", "Case", labels, len(labels) - 1, False)
            if ok:
                self.recorder.open_case(cases[labels.index(label)].number)

        self.recorder.list_cases(choose)

    def choose_report_path(self) -> None:
        case = self.recorder.case
        if case is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export case report", f"case-{case.number}.pdf", REPORT_FILTER)
        if path:
            self.statusBar().showMessage(f"Writing the report of case {case.number}…")
            self.recorder.export_report(path)

    def review_row(self, row: int, mark: ReviewMark, note: str = "") -> bool:
        candidate = self.candidates.candidate(row)
        if candidate is None:
            return False
        self.recorder.review(candidate.rank, candidate.photo_id, mark, note)
        return True

    def review_selected(self, mark: ReviewMark, note: str = "") -> bool:
        index = self.view.currentIndex()
        return index.isValid() and self.review_row(index.row(), mark, note)

    def _review_with_note(self) -> None:
        index = self.view.currentIndex()
        if not index.isValid():
            return
        marks = [ReviewMark.POSSIBLE, ReviewMark.EXCLUDED]
        label, ok = QInputDialog.getItem(self, "Review", "Mark", [m.label for m in marks], 0, False)
        if not ok:
            return
        note, ok = QInputDialog.getText(self, "Review", "Note")
        if ok:
            self.review_row(index.row(), marks[[m.label for m in marks].index(label)], note)

    # -- sketch files ------------------------------------------------------------------------
    def _tool_changed(self, tool: str) -> None:
        (self.pen_action if tool == "pen" else self.eraser_action).setChecked(True)

    def sketch_folder(self) -> str:
        """Where the sketch file dialogs open: the folder last used, else the user's documents."""
        last = str(self.settings.value("sketch/folder", "") or "")
        if last and Path(last).is_dir():
            return last
        documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
        return documents if documents and Path(documents).is_dir() else str(Path.home())

    def _remember_sketch_folder(self, path: str | Path) -> None:
        self.settings.setValue("sketch/folder", str(Path(path).resolve().parent))

    def confirm_discard(self, doing: str) -> bool:
        """True when no unsaved drawing would be lost, or the user saved it or chose to discard it."""
        if not self.document.has_unsaved_work():
            return True
        box = QMessageBox(
            QMessageBox.Question,
            "Unsaved sketch",
            f"The sketch has changes that are not saved. Save them before {doing}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        if answer == QMessageBox.Save:
            return self.choose_save_path()
        return answer == QMessageBox.Discard

    def choose_sketch_to_open(self) -> None:
        if not self.confirm_discard("opening another sketch"):
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open sketch", self.sketch_folder(), SKETCH_FILTER)
        if path:
            self.open_sketch(path)

    def open_sketch(self, path: str | Path) -> bool:
        try:
            self.document.load(path)
        except Exception as exc:  # noqa: BLE001
            from app.workers import user_message

            self.show_error(user_message(exc), "Cannot open the sketch")
            return False
        self._remember_sketch_folder(path)
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def choose_save_path(self) -> bool:
        """Ask where to save the sketch and save it; True once it is saved."""
        suggested = str(Path(self.sketch_folder()) / "sketch.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save sketch", suggested, SKETCH_FILTER)
        return bool(path) and self.save_sketch(path)

    def save_sketch(self, path: str | Path) -> bool:
        try:
            png, vectors = self.document.save(path)
        except Exception as exc:  # noqa: BLE001
            from app.workers import user_message

            self.show_error(user_message(exc), "Cannot save the sketch")
            return False
        self._remember_sketch_folder(vectors)
        self.statusBar().showMessage(f"Saved {vectors.name} and {png.name} in {vectors.parent}", 5000)
        return True

    def choose_scan(self) -> None:
        if not self.confirm_discard("importing a scan in its place"):
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import scanned sketch", self.sketch_folder(), IMAGE_FILTER)
        if path:
            self._remember_sketch_folder(path)
            self.import_scan(path)

    def import_scan(self, path: str | Path) -> None:
        """Greyscale, auto-contrast and crop the image in the background; it becomes the background."""

        def prepare(task):
            from app.scan_import import load_scan_with_bytes

            grey, data = load_scan_with_bytes(path)
            return grey, str(path), data

        self.statusBar().showMessage(f"Importing {path}…")
        self.runner.submit(
            prepare,
            pool="io",
            on_result=self._scan_ready,
            on_error=lambda m: self.show_error(m, "Cannot import the sketch"),
            name="scan",
        )

    def _scan_ready(self, result) -> None:
        grey, path, data = result
        self.document.set_background(grey)
        self.live.scan = (self.document.background, path, data)  # recorded with searches over this scan
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

    def choose_attribute_sheet(self) -> None:
        if self.workspace is None:
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Import attributes", self.sketch_folder(), "Attribute sheets (*.csv);;All files (*)"
        )
        if not path:
            return
        key, pattern = None, None
        if sheet_key_column(Path(path)) == "id":  # one row per person: ask how file names give the id
            pattern, ok = QInputDialog.getText(
                self,
                "Rows name people",
                "The sheet has one row per person (column 'id'). How does a photo's file name give the "
                "person id? A regular expression; its first group is the id:",
                text=DEFAULT_ID_PATTERN,
            )
            if not ok:
                return
            key = "id"
        self.import_attribute_sheet(path, key, pattern or None)

    def import_attribute_sheet(self, path: str | Path, key: str | None = None, id_pattern: str | None = None) -> None:
        """Read a CSV of attribute values in the background (the same checks and errors as the
        command line's ``attributes import``); the grid shows the new values once it is done."""
        workspace = self.workspace
        if workspace is None:
            self.show_error("The gallery is still opening; try again in a moment.", "Import attributes")
            return

        def read(task):
            return workspace.import_attribute_sheet(Path(path), key, id_pattern)

        def done(sheet) -> None:
            message = (
                f"Set {len(sheet.rows)} attribute value(s) from {Path(path).name}; "
                f"{len(sheet.unmatched)} row(s) matched no photo"
            )
            if sheet.ambiguous:
                message += f"; {len(sheet.ambiguous)} file name(s) match photos in several folders, not applied"
            self._gallery_changed(message)

        self.runner.submit(
            read,
            pool="long",
            on_result=done,
            on_error=lambda m: self.show_error(m, "Cannot import the attribute sheet"),
            name="attribute sheet",
        )

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
        from core.common.paths import default_data_dir

        default = default_data_dir()
        in_use = Path(self.workspace.data_dir if self.workspace is not None else (self._data_dir() or default))
        if self.options.data_dir:
            origin = "from --data-dir"
        elif self.preferences.data_dir:
            origin = "the saved setting"
        else:
            origin = "the default" if in_use == default else ""
        dialog = SettingsDialog(self.preferences, default, self, in_use=in_use, in_use_origin=origin)
        self._settings_dialog = dialog  # tests reach the open (modal) dialog here
        accepted = dialog.exec() == SettingsDialog.Accepted
        self._settings_dialog = None
        if not accepted:
            return
        new = dialog.preferences()
        data_changed = new.data_dir != self.preferences.data_dir
        device_changed = new.device != self.preferences.device
        self.preferences = new
        self.preferences.save(self.settings)
        self.top_k.setValue(new.top_k)
        if data_changed:
            self.options.data_dir = None  # the new choice wins over the command line's
        if device_changed:
            self.options.device = None
        if data_changed or device_changed:
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
        if not self.confirm_discard("quitting"):
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("top_k", self.preferences.top_k)
        self.settings.sync()
        for dialog in list(self._comparisons):
            dialog.close()
        if self._job_running():
            self.statusBar().showMessage(f"Stopping: {self._job_dialog.windowTitle()}…")
        self.recorder.flush()  # the search shown last is recorded before the window goes
        self.runner.pools["record"].waitForDone(30000)
        self.live.workspace = None
        # Cancel, but do not wait: a running batch finishes or dies with the process, and either way
        # SQLite (committed batches) and the index (atomic writes) stay whole, as after a kill -9.
        self.runner.shutdown(msecs=0)
        if self._owns_workspace and self.workspace is not None:
            self.workspace.close()
        self.workspace = None
        super().closeEvent(event)
