"""The main window: canvas on the left, ranked candidates on the right, attribute filters and the
gallery in docks, model and gallery in the status bar. The workspace opens in the background, so
the window appears at once; every call into it runs in a worker.

The window composes its parts and wires them: the menus and toolbar (app/menus.py), the candidate
grid (app/candidate_grid.py), the status bar (app/status_bar.py), and the controllers that do the
work behind the menus: sketch files, gallery jobs, cases and review marks, model switching."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QScrollArea, QSplitter

from app.about import show_about
from app.candidate_grid import CandidateGrid
from app.candidates_model import CandidatesModel, ThumbnailCache
from app.canvas import SketchCanvas
from app.case_controls import CaseControls, window_title
from app.casework import CaseRecorder
from app.comparison import ComparisonDialog
from app.controller import WindowController
from app.filters import FilterPanel
from app.gallery_jobs import GalleryJobs, import_elsewhere_text, read_only_text
from app.gallery_panel import GalleryPanel
from app.live_search import LiveSearch
from app.menus import WindowMenus
from app.model_switcher import ModelSwitcher
from app.settings import Preferences, SettingsDialog, remember_case, remembered_case
from app.sketch_files import SketchFiles
from app.status_bar import WindowStatusBar
from app.strokes import SketchDocument
from app.workers import TaskRunner
from core.casework.records import ReviewMark

log = logging.getLogger(__name__)


@dataclass
class LaunchOptions:
    """Command-line choices; each one set overrides the saved preference for this run."""

    data_dir: Path | None = None
    model_dir: Path | None = None
    device: str | None = None


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
        self._comparisons: list[ComparisonDialog] = []
        self._settings_dialog: SettingsDialog | None = None
        self.last_error = ""
        self._gallery_reading = self._gallery_stale = False  # see refresh_gallery
        self.runner = TaskRunner(self)

        self.document = SketchDocument(parent=self)
        self.canvas = SketchCanvas(self.document)
        self.thumbnails = ThumbnailCache(self.runner, parent=self)
        self.candidates = CandidatesModel(self.thumbnails, self)
        self.live = LiveSearch(self.runner, self.document, self)
        self.live.top_k = self.preferences.top_k
        self.recorder = CaseRecorder(self.runner, self)
        self.recorder.report_top = self.preferences.report_top
        self.filters = FilterPanel()
        self.gallery = GalleryPanel()
        self.grid = CandidateGrid(self.candidates, self.preferences.top_k)
        self.menus = WindowMenus(self, self.document, self.canvas)
        self.addToolBar(self.menus.toolbar)
        self.status_bar = WindowStatusBar()
        self.setStatusBar(self.status_bar)
        self.sketch_files = SketchFiles(self.document, self.live, self.runner, self.settings, self)
        self.gallery_jobs = GalleryJobs(self.runner, self.settings, self)
        self.case_controls = CaseControls(self.recorder, self.candidates, self.grid, self, self.settings)
        self.model_switcher = ModelSwitcher(self.runner, self)
        self.status_bar.addPermanentWidget(self.model_switcher.indicator)

        self._build_layout()
        self._case_changed(None)
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
    def _build_layout(self) -> None:
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.canvas)
        splitter.addWidget(self.grid)
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
        self.menus.view_menu.addAction(self.filters_dock.toggleViewAction())
        self.menus.view_menu.addAction(self.gallery_dock.toggleViewAction())

    def _connect(self) -> None:
        menus, files, jobs, case = self.menus, self.sketch_files, self.gallery_jobs, self.case_controls
        for action, slot in (
            (menus.open_sketch_action, files.choose_sketch_to_open),
            (menus.import_sketch_action, files.choose_scan),
            (menus.save_sketch_action, files.choose_save_path),
            (menus.import_folder_action, jobs.choose_import_folder),
            (menus.import_video_action, jobs.choose_import_videos),
            (menus.import_attributes_action, jobs.choose_attribute_sheet),
            (menus.settings_action, self.edit_settings),
            (menus.about_action, self.show_about),
            (menus.quit_action, self.close),
            (menus.compare_action, self._compare_selected),
            (menus.possible_action, lambda: case.review_selected(ReviewMark.POSSIBLE)),
            (menus.exclude_action, lambda: case.review_selected(ReviewMark.EXCLUDED)),
            (menus.clear_mark_action, lambda: case.review_selected(ReviewMark.CLEAR)),
            (menus.note_mark_action, case.review_with_note),
            (menus.new_case_action, lambda: case.choose_new_case()),
            (menus.open_case_action, lambda: case.choose_case_to_open()),
            (menus.close_case_action, self.recorder.close_case),
            (menus.export_report_action, case.choose_report_path),
            (menus.export_audit_action, case.choose_audit_log_path),
            (menus.adapt_action, lambda: self.model_switcher.adapt_to_gallery()),
            (menus.use_model_action, self.model_switcher.choose_model),
        ):
            action.triggered.connect(slot)
        self.grid.add_candidate_actions([menus.compare_action, *menus.review_actions])
        for controller in (files, *self._controllers()):
            controller.message.connect(self.status_bar.showMessage)
            controller.alert.connect(self.show_error)
            controller.failed.connect(self._status_error)
        self.live.results.connect(self._show_results)
        self.live.busy.connect(self.grid.show_searching)
        self.live.failed.connect(self._search_failed)
        self.live.cleared.connect(self.grid.clear)
        self.live.cleared.connect(self.recorder.screen_cleared)
        self.live.shown.connect(self.recorder.shown)
        self.document.changed.connect(self.recorder.sketch_changed)
        self.recorder.marksChanged.connect(self.candidates.set_marks)
        self.recorder.queryWarnings.connect(self._show_query_warnings)
        self.recorder.caseChanged.connect(self._case_changed)
        self.recorder.caseChosen.connect(self._remember_case)
        self.recorder.failed.connect(self._status_error)
        self.filters.changed.connect(self._filters_changed)
        self.grid.top_k.valueChanged.connect(self._top_k_changed)
        self.grid.compareRequested.connect(self.open_comparison)
        self.grid.importRequested.connect(jobs.choose_import_folder)
        self.gallery.importRequested.connect(jobs.choose_import_folder)
        self.gallery.rescanRequested.connect(lambda folder: jobs.start_import([folder]))
        self.gallery.removeRequested.connect(jobs.confirm_remove_folder)
        self.gallery.pruneRequested.connect(jobs.prune_missing)
        jobs.galleryChanged.connect(self._gallery_changed)
        jobs.galleryGrew.connect(self.refresh_gallery)
        self.model_switcher.modelChosen.connect(self.use_model)

    def _controllers(self) -> tuple[WindowController, ...]:
        """The controllers that act on the open gallery."""
        return self.gallery_jobs, self.case_controls, self.model_switcher

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
        reuse = old.models.loaded() if old is not None and key == self._model_key else None
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

        self.status_bar.show_model_loading()
        self.status_bar.showMessage("Opening the gallery and loading the model…")
        self.runner.submit(
            open_it,
            pool="long",
            on_result=lambda ws: self._workspace_ready(ws, owned=True),
            on_error=self._workspace_failed,
            name="open workspace",
        )

    def use_model(self, folder) -> None:
        """Reopen the gallery with the model in ``folder`` (remembered for the next start); photos
        without an embedding for it are indexed in the background as for any model change."""
        if not folder:
            self._status_error("No model to switch to; the model in use is unchanged.")
            return
        self.options.model_dir = Path(folder)
        if self.workspace is not None:  # the same gallery, whatever opened it
            self.options.data_dir = self.workspace.data_dir
        self.settings.setValue("model_dir", str(folder))
        self.settings.sync()
        self.open_workspace()

    def show_about(self):
        return show_about(self, self.workspace.models.info() if self.workspace is not None else None)

    def _set_workspace(self, workspace) -> None:
        if self.workspace is not None and self.workspace is not workspace:
            self.workspace.writer.release_window()  # another window may hold the gallery now
        self.workspace = workspace
        for part in (self.thumbnails, self.live, self.recorder, *self._controllers()):
            part.set_workspace(workspace)
        enabled = workspace is not None
        self.menus.set_workspace_open(enabled)
        self.gallery.set_enabled(enabled)
        self.grid.empty_import_button.setEnabled(enabled)

    def _workspace_ready(self, workspace, owned: bool) -> None:
        self._owns_workspace = owned
        info = workspace.models.info()
        self.filters.set_schema(workspace.schema, predicted=info.attributes_trained)
        self.status_bar.show_model(info)
        self.status_bar.showMessage(f"Gallery {workspace.data_dir}", 5000)
        self.live.where, self.live.min_confidence = self.filters.where(), self.filters.min_confidence()
        self._hold_gallery(workspace)
        self._set_workspace(workspace)
        self.case_controls.restore_case(remembered_case(self.settings, workspace.data_dir))
        self.refresh_gallery()
        self.gallery_jobs.index_if_needed(workspace)
        self.workspaceReady.emit()

    def _hold_gallery(self, workspace) -> None:
        """Hold the gallery for this window, and say once, at the start, if another SketchSearch has
        it: a window that holds it (this one is then read-only) or an import that runs."""
        writer = workspace.writer
        held = writer.hold_for_window()
        self.gallery_jobs.refusal = "" if held else read_only_text(workspace.data_dir)
        if not held:
            self.show_error(self.gallery_jobs.refusal, "Gallery open in another window")
        elif writer.running_elsewhere():
            self.show_error(import_elsewhere_text(workspace.data_dir), "Import running elsewhere")

    def _workspace_failed(self, message: str) -> None:
        self.status_bar.show_no_model()
        self.show_error(f"The gallery could not be opened: {message}", "Cannot open the gallery")

    def refresh_gallery(self) -> None:
        """Read the gallery's counts again; asked again while a read runs (batches of an import
        committing), it reads once more after that one."""
        if self.workspace is None:
            return
        if self._gallery_reading:
            self._gallery_stale = True
            return
        workspace = self.workspace
        self._gallery_reading, self._gallery_stale = True, False

        def read(task):
            return workspace.stats(), workspace.folders()

        def failed(message: str) -> None:
            self._gallery_reading = False
            self._status_error(message)

        self.runner.submit(read, pool="io", on_result=self._gallery_read, on_error=failed, name="stats")

    def _gallery_read(self, result) -> None:
        self._gallery_reading = False
        if self._gallery_stale:
            self.refresh_gallery()
        stats, folders = result
        self.grid.show_gallery(stats, sketch_drawn=not self.document.is_empty())
        self.gallery.set_folders(folders)
        data_dir = self.workspace.data_dir if self.workspace else None
        self.status_bar.show_gallery(stats, data_dir, self.gallery_jobs.refusal)

    def _gallery_changed(self) -> None:
        self.refresh_gallery()
        self.live.rerank()

    # -- search ------------------------------------------------------------------------------
    def _filters_changed(self) -> None:
        self.live.set_filters(self.filters.where(), self.filters.min_confidence())

    def _top_k_changed(self, value: int) -> None:
        self.preferences.top_k = value
        self.live.set_top_k(value)

    def _show_results(self, _request: int, candidates) -> None:
        drawn = not self.document.is_empty()
        self.grid.show_results(candidates, self.live.last_seconds, bool(self.live.where), drawn)

    def _show_query_warnings(self, search_id: int, warnings: list) -> None:
        if not self.document.is_empty():  # a search recorded just before the sketch was cleared
            self.grid.show_query_warnings(search_id, warnings)

    def _search_failed(self, message: str) -> None:
        self.grid.show_failed()
        self._status_error(message)

    # -- casework ----------------------------------------------------------------------------
    def _case_changed(self, case) -> None:
        self.status_bar.show_case(case)
        self.setWindowTitle(window_title(case))
        self.menus.set_case_open(case is not None)

    def _remember_case(self, case) -> None:
        """The case chosen is opened again at the next start on this gallery (none: no case)."""
        if self.workspace is not None:
            remember_case(self.settings, self.workspace.data_dir, case.number if case is not None else None)

    # -- comparison --------------------------------------------------------------------------
    def _compare_selected(self) -> None:
        row = self.grid.current_row()
        if row is not None:
            self.open_comparison(row)

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
        self.status_bar.showMessage("Attribute correction saved", 5000)
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
        operator = self.workspace.desk.operator if self.workspace is not None else None
        dialog = SettingsDialog(self.preferences, default, self, in_use=in_use, in_use_origin=origin, operator=operator)
        self._settings_dialog = dialog  # tests reach the open (modal) dialog here
        accepted = dialog.exec() == SettingsDialog.Accepted
        self._settings_dialog = None
        if not accepted:
            return
        new = dialog.preferences()
        chosen = dialog.operator.text().strip()
        if operator is not None and chosen and chosen != operator:
            self.recorder.set_operator(chosen, lambda name: self.status_bar.showMessage(f"Operator: {name}", 5000))
        data_changed = new.data_dir != self.preferences.data_dir
        device_changed = new.device != self.preferences.device
        self.preferences = new
        self.recorder.report_top = new.report_top
        self.preferences.save(self.settings)
        self.grid.top_k.setValue(new.top_k)
        if data_changed:
            self.options.data_dir = None  # the new choice wins over the command line's
        if device_changed:
            self.options.device = None
        if data_changed or device_changed:
            self.open_workspace()

    def show_error(self, message: str, title: str = "SketchSearch") -> None:
        """A message box that does not block (the window keeps working) and a status bar line."""
        self.last_error = message
        # the box holds it whole; the status bar would cut a long one, so it names the box instead
        self.status_bar.showMessage(message if self.status_bar.fits(message) else f"{title}: see the message", 15000)
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.errorShown.emit(message)

    def _status_error(self, message: str) -> None:
        self.last_error = message
        self.status_bar.showMessage(message, 15000)
        self.errorShown.emit(message)

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.sketch_files.confirm_discard("quitting"):
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("top_k", self.preferences.top_k)
        self.settings.sync()
        for dialog in list(self._comparisons):
            dialog.close()
        if self.gallery_jobs.job_running():
            self.status_bar.showMessage(f"Stopping: {self.gallery_jobs.job_dialog.windowTitle()}…")
        self.recorder.flush()  # the search shown last is recorded before the window goes
        self.runner.pools["record"].waitForDone(30000)
        self.live.workspace = None
        self.model_switcher.stop()  # an adaptation stops at its next step and keeps a whole state
        # Cancel, but do not wait: a running batch finishes or dies with the process, and either way
        # SQLite (committed batches) and the index (atomic writes) stay whole, as after a kill -9.
        self.runner.shutdown(msecs=0)
        if self.workspace is not None:
            self.workspace.writer.release_window()
        if self._owns_workspace and self.workspace is not None:
            self.workspace.close()
        self.workspace = None
        for controller in self._controllers():
            controller.set_workspace(None)  # a closed gallery is nobody's to act on
        super().closeEvent(event)
