"""The Model menu's work: adapt the model to this gallery (one run at a time, in its own window, which
can be hidden into the status bar while it runs) or pick another installed model. Either way the
choice goes out as ``modelChosen``; the window reopens the gallery with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from app.adapt_indicator import AdaptIndicator
from app.controller import WindowController
from app.workers import TaskRunner

if TYPE_CHECKING:  # loaded with the first adaptation: the model registry imports torch
    from app.adapt_dialog import AdaptDialog
    from app.adapt_run import AdaptRun

STOP_WAIT_MS = 120_000  # on quitting: the step under way (or a chunk of a measurement), then the state written


class ModelSwitcher(WindowController):
    modelChosen = Signal(object)  # the model's folder

    def __init__(self, runner: TaskRunner, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.runner = runner
        self.settings = None  # the adaptation's AdaptSettings; None: its defaults
        self.dialog: AdaptDialog | None = None  # the adaptation's window, until it is closed
        self.indicator = AdaptIndicator()  # the window puts it in its status bar
        self.indicator.clicked.connect(self.show_adaptation)

    def adapt_to_gallery(self, settings=None) -> AdaptDialog | None:
        """Model → Adapt to this gallery…: the running (or finished) adaptation's window if there is
        one, else a new run, which resumes a cancelled one."""
        from app.adapt_dialog import AdaptDialog
        from app.adapt_run import AdaptRun

        if self.dialog is not None and self.dialog.run.state in ("running", "done"):
            self.show_adaptation()
            return self.dialog
        workspace = self.workspace
        if workspace is None or workspace.model.folder is None:
            return None
        run = AdaptRun(
            self.runner,
            workspace.model.folder,
            workspace.data_dir,
            workspace.model.sha256,
            settings or self.settings,
            self,
        )
        if self.dialog is None:
            self.dialog = AdaptDialog(run, self.dialog_parent)
            self.dialog.setAttribute(Qt.WA_DeleteOnClose)
            self.dialog.useModel.connect(self.modelChosen)
            self.dialog.resumeRequested.connect(self._resume)
            self.dialog.finished.connect(self._closed)
        self._follow(run)
        self.show_adaptation()
        return self.dialog

    def show_adaptation(self) -> None:
        if self.dialog is not None:
            self.dialog.show()
            self.dialog.raise_()
            self.dialog.activateWindow()

    def stop(self) -> None:
        """Quitting: a running adaptation is cancelled and waited for, so that it leaves its state
        whole (resumed at the next start) rather than being cut off mid-write."""
        if self.dialog is not None and self.dialog.run.running():
            self.message.emit("Stopping the adaptation; the steps done are kept…", 0)
            self.dialog.run.stop(STOP_WAIT_MS)

    def _resume(self) -> None:
        """A new run of the same adaptation (same model, gallery and settings): it resumes the state kept."""
        from app.adapt_run import AdaptRun

        old = self.dialog.run
        self._follow(AdaptRun(self.runner, old.model_dir, old.data_dir, old.base_sha256, old.settings, self))

    def _follow(self, run: AdaptRun) -> None:
        old = self.dialog.run if self.dialog.run is not run else None
        self.dialog.follow(run)
        if old is not None:
            old.deleteLater()
        run.changed.connect(lambda: self.dialog is not None and self.dialog.run is run and self.indicator.show_run(run))
        run.ended.connect(lambda state: self._ended(run, state))
        self.indicator.show_run(run)

    def _ended(self, run: AdaptRun, state: str) -> None:
        if self.dialog is None or self.dialog.run is not run or self.dialog.isVisible():
            return
        if state == "done":  # it ended out of sight: say so where the user looks
            self.message.emit("The adapted model is ready: click “Adapted model ready” in the status bar", 15000)
        elif state == "failed":
            self.alert.emit(run.message, "Adaptation failed")

    def _closed(self) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.run.deleteLater()
        self.indicator.show_run(None)

    def choose_model(self) -> None:
        from app.adapt_dialog import ModelChooser

        if self.workspace is None:
            return
        dialog = ModelChooser(self.workspace.data_dir, self.workspace.model.sha256, self.dialog_parent)
        if dialog.exec() == ModelChooser.Accepted and dialog.chosen() is not None:
            self.modelChosen.emit(dialog.chosen().path)
