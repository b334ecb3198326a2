"""Work that changes the gallery: import a folder, index photos a new model has no embeddings for,
read an attribute sheet, remove a folder, forget missing photos. Imports and indexing run one at a
time, each in its progress dialog; ``galleryChanged`` says when the window should read it again,
``galleryGrew`` when a running job has committed more photos (its counts are read again)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from app.controller import WindowController
from app.import_dialog import GalleryJobDialog, ImportDialog, IndexingDialog
from app.settings import ATTRIBUTE_SHEETS, PHOTO_FOLDERS, last_folder, remember_folder
from app.workers import TaskRunner
from core.gallery.attribute_sheet import DEFAULT_ID_PATTERN, sheet_key_column

STILL_OPENING = "The gallery is still opening; try again in a moment."


def read_only_text(data_dir) -> str:
    """Why a window changes nothing in a gallery another window holds (core.catalogue.writer_lock)."""
    return (
        f"Another SketchSearch window has this gallery open ({data_dir}). This window is read-only: it "
        "searches and records casework, but refuses imports, indexing, attribute sheets and removing "
        "photos, which would leave the other window's index behind. To change the gallery, use the other "
        "window, or close both and start SketchSearch again."
    )


def import_elsewhere_text(data_dir) -> str:
    return (
        f"Another SketchSearch is importing into this gallery ({data_dir}). An import here is refused "
        "until it has finished; this window searches the photos committed before it opened."
    )


class GalleryJobs(WindowController):
    galleryChanged = Signal()
    galleryGrew = Signal()

    def __init__(self, runner: TaskRunner, settings: QSettings, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.runner = runner
        self.settings = settings
        self.job_dialog: GalleryJobDialog | None = None  # the import or indexing shown last, while open
        self.refusal = ""  # why this window changes nothing in the gallery ("": it may)

    def job_running(self) -> bool:
        return self.job_dialog is not None and self.job_dialog.running()

    def _refused(self, title: str) -> bool:
        """A read-only window says why, whole, in a dialog."""
        if self.refusal:
            self.alert.emit(self.refusal, title)
        return bool(self.refusal)

    # -- imports and indexing -----------------------------------------------------------------
    def choose_import_folder(self) -> None:
        if self.workspace is None or self._refused("Import"):
            return
        folder = QFileDialog.getExistingDirectory(
            self.dialog_parent, "Import photos from folder", last_folder(self.settings, PHOTO_FOLDERS)
        )
        if folder:
            remember_folder(self.settings, PHOTO_FOLDERS, folder)
            self.start_import([folder])

    def start_import(self, roots) -> GalleryJobDialog | None:
        if self.workspace is None:
            self.alert.emit(STILL_OPENING, "Import")
            return None
        if self._refused("Import"):
            return None
        if self.job_running():
            self.job_dialog.raise_()
            self.message.emit(f"Wait for the running job: {self.job_dialog.windowTitle()}", 5000)
            return self.job_dialog
        return self._start_job(ImportDialog(self.runner, self.workspace, [Path(r) for r in roots], self.dialog_parent))

    def index_if_needed(self, workspace) -> None:
        """A gallery imported with another model has no embeddings for this one: index it now (once
        per opening), rather than leave its photos out of every search."""

        def count(task):
            return workspace.gallery.count_unembedded()

        def start(unembedded: int) -> None:
            if not unembedded or workspace is not self.workspace or self.job_running():
                return
            if self.refusal:
                self.message.emit(
                    f"{unembedded} photo(s) are not indexed for this model: the other window indexes them", 0
                )
            else:
                self._start_job(IndexingDialog(self.runner, workspace, unembedded, self.dialog_parent))

        self.runner.submit(count, pool="io", on_result=start, on_error=self.failed.emit, name="count unindexed")

    def _start_job(self, dialog: GalleryJobDialog) -> GalleryJobDialog:
        """One gallery job (import or indexing) at a time, shown in its progress dialog."""
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.finished_import.connect(lambda summary: self._job_finished(dialog, summary))
        dialog.committed.connect(self.galleryGrew)
        dialog.destroyed.connect(lambda: self.job_dialog is dialog and setattr(self, "job_dialog", None))
        self.job_dialog = dialog
        dialog.show()
        return dialog

    def _job_finished(self, dialog: GalleryJobDialog, summary) -> None:
        if summary is not None:
            self.message.emit(dialog.describe(summary), 10000)
        self.galleryChanged.emit()

    # -- attributes ---------------------------------------------------------------------------
    def choose_attribute_sheet(self) -> None:
        if self.workspace is None or self._refused("Import attributes"):
            return
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "Import attributes",
            last_folder(self.settings, ATTRIBUTE_SHEETS),
            "Attribute sheets (*.csv);;All files (*)",
        )
        if not path:
            return
        remember_folder(self.settings, ATTRIBUTE_SHEETS, path)
        key, pattern = None, None
        if sheet_key_column(Path(path)) == "id":  # one row per person: ask how file names give the id
            pattern, ok = QInputDialog.getText(
                self.dialog_parent,
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
            self.alert.emit(STILL_OPENING, "Import attributes")
            return
        if self._refused("Import attributes"):
            return

        def read(task):
            return workspace.gallery.import_attribute_sheet(Path(path), key, id_pattern)

        def done(sheet) -> None:
            message = (
                f"Set {len(sheet.rows)} attribute value(s) from {Path(path).name}; "
                f"{len(sheet.unmatched)} row(s) matched no photo"
            )
            if sheet.ambiguous:
                message += f"; {len(sheet.ambiguous)} file name(s) match photos in several folders, not applied"
            self._changed(message)

        self.runner.submit(
            read,
            pool="long",
            on_result=done,
            on_error=lambda m: self.alert.emit(m, "Cannot import the attribute sheet"),
            name="attribute sheet",
        )

    # -- removing -----------------------------------------------------------------------------
    def confirm_remove_folder(self, folder: str) -> None:
        if self._refused("Remove folder"):
            return
        answer = QMessageBox.question(
            self.dialog_parent,
            "Remove folder",
            f"Remove the photos of\n{folder}\nfrom the gallery? The files are not touched.",
        )
        if answer == QMessageBox.Yes:
            self.remove_folder(folder)

    def remove_folder(self, folder: str) -> None:
        workspace = self.workspace
        if workspace is None or self._refused("Remove folder"):
            return
        self.runner.submit(
            lambda task: workspace.gallery.remove_folder(folder),
            pool="long",
            on_result=lambda n: self._changed(f"Removed {n} photo(s) of {folder}"),
            on_error=lambda m: self.alert.emit(m, "Cannot remove the folder"),
            name="remove folder",
        )

    def prune_missing(self) -> None:
        workspace = self.workspace
        if workspace is None or self._refused("Forget missing photos"):
            return
        self.runner.submit(
            lambda task: workspace.gallery.prune_missing(),
            pool="long",
            on_result=lambda n: self._changed(f"Forgot {n} missing photo(s)"),
            on_error=lambda m: self.alert.emit(m, "Cannot forget missing photos"),
            name="prune",
        )

    def _changed(self, message: str) -> None:
        self.message.emit(message, 8000)
        self.galleryChanged.emit()
