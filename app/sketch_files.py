"""Sketch files: open and save a drawing, import a scanned paper sketch as its background, and ask
before unsaved strokes would be lost. The file dialogs open in the folder used last."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.controller import WindowController
from app.live_search import LiveSearch
from app.settings import SCANS, SKETCHES, last_folder, remember_folder
from app.strokes import SketchDocument
from app.workers import TaskRunner, user_message

SKETCH_FILTER = "SketchSearch sketch (*.json *.png)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"


class SketchFiles(WindowController):
    def __init__(
        self,
        document: SketchDocument,
        live: LiveSearch,
        runner: TaskRunner,
        settings: QSettings,
        dialog_parent: QWidget,
    ):
        super().__init__(dialog_parent)
        self.document = document
        self.live = live
        self.runner = runner
        self.settings = settings

    def sketch_folder(self) -> str:
        """Where the sketch file dialogs open: the folder last used, else the user's documents."""
        return last_folder(self.settings, SKETCHES)

    def _remember_folder(self, path: str | Path) -> None:
        remember_folder(self.settings, SKETCHES, path)

    def confirm_discard(self, doing: str) -> bool:
        """True when no unsaved drawing would be lost, or the user saved it or chose to discard it."""
        if not self.document.has_unsaved_work():
            return True
        box = QMessageBox(
            QMessageBox.Question,
            "Unsaved sketch",
            f"The sketch has changes that are not saved. Save them before {doing}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
            self.dialog_parent,
        )
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        if answer == QMessageBox.Save:
            return self.choose_save_path()
        return answer == QMessageBox.Discard

    def choose_sketch_to_open(self) -> None:
        if not self.confirm_discard("opening another sketch"):
            return
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Open sketch", self.sketch_folder(), SKETCH_FILTER)
        if path:
            self.open_sketch(path)

    def open_sketch(self, path: str | Path) -> bool:
        try:
            self.document.load(path)
        except Exception as exc:  # noqa: BLE001
            self.alert.emit(user_message(exc), "Cannot open the sketch")
            return False
        self._remember_folder(path)
        self.message.emit(f"Opened {path}", 5000)
        return True

    def choose_save_path(self) -> bool:
        """Ask where to save the sketch and save it; True once it is saved."""
        suggested = str(Path(self.sketch_folder()) / "sketch.json")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Save sketch", suggested, SKETCH_FILTER)
        return bool(path) and self.save_sketch(path)

    def save_sketch(self, path: str | Path) -> bool:
        try:
            png, vectors = self.document.save(path)
        except Exception as exc:  # noqa: BLE001
            self.alert.emit(user_message(exc), "Cannot save the sketch")
            return False
        self._remember_folder(vectors)
        self.message.emit(f"Saved {vectors.name} and {png.name} in {vectors.parent}", 5000)
        return True

    def choose_scan(self) -> None:
        if not self.confirm_discard("importing a scan in its place"):
            return
        folder = last_folder(self.settings, SCANS)
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Import scanned sketch", folder, IMAGE_FILTER)
        if path:
            remember_folder(self.settings, SCANS, path)
            self.import_scan(path)

    def import_scan(self, path: str | Path) -> None:
        """Greyscale, auto-contrast and crop the image in the background; it becomes the background."""

        def prepare(task):
            from app.scan_import import load_scan_with_bytes

            grey, data = load_scan_with_bytes(path)
            return grey, str(path), data

        self.message.emit(f"Importing {path}…", 0)
        self.runner.submit(
            prepare,
            pool="io",
            on_result=self._scan_ready,
            on_error=lambda m: self.alert.emit(m, "Cannot import the sketch"),
            name="scan",
        )

    def _scan_ready(self, result) -> None:
        grey, path, data = result
        self.document.set_background(grey)
        self.live.remember_scan(self.document.background, path, data)  # recorded with searches over this scan
        self.message.emit("Sketch imported: draw over it to refine it", 5000)
