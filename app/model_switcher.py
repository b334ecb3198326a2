"""The Model menu's work: adapt the model to this gallery (one run at a time, in its own dialog) or
pick another installed model. Either way the choice goes out as ``modelChosen``; the window reopens
the gallery with it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from app.controller import WindowController
from app.workers import TaskRunner


class ModelSwitcher(WindowController):
    modelChosen = Signal(object)  # the model's folder

    def __init__(self, runner: TaskRunner, dialog_parent: QWidget):
        super().__init__(dialog_parent)
        self.runner = runner
        self.adapt_dialog = None  # Model → Adapt to this gallery…, while it is open

    def adapt_to_gallery(self, settings=None):
        """Model → Adapt to this gallery…: one adaptation at a time, in its own dialog."""
        from app.adapt_dialog import AdaptDialog

        workspace = self.workspace
        if workspace is None or workspace.model.folder is None:
            return None
        if self.adapt_dialog is not None and self.adapt_dialog.running():
            self.adapt_dialog.raise_()
            return self.adapt_dialog
        dialog = AdaptDialog(
            self.runner,
            workspace.model.folder,
            workspace.data_dir,
            workspace.model.sha256,
            settings,
            self.dialog_parent,
        )
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.useModel.connect(self.modelChosen)
        dialog.destroyed.connect(lambda: self.adapt_dialog is dialog and setattr(self, "adapt_dialog", None))
        self.adapt_dialog = dialog
        dialog.show()
        return dialog

    def choose_model(self) -> None:
        from app.adapt_dialog import ModelChooser

        if self.workspace is None:
            return
        dialog = ModelChooser(self.workspace.data_dir, self.workspace.model.sha256, self.dialog_parent)
        if dialog.exec() == ModelChooser.Accepted and dialog.chosen() is not None:
            self.modelChosen.emit(dialog.chosen().path)
