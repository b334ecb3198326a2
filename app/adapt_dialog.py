"""Model menu dialogs: the window of an adaptation of the model to the open gallery (its progress,
time left, cancel, resume, and Use once the model is written) and the choice among the installed
models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.adapt_run import AdaptRun

if TYPE_CHECKING:
    from core.model.registry import InstalledModel


class CloseQuestion(QMessageBox):
    """Closing the window of a running adaptation asks what to do with the run: hiding it silently
    would leave minutes of training running out of sight."""

    def __init__(self, parent: QWidget):
        super().__init__(
            QMessageBox.Question, "Adapt the model to this gallery", "The adaptation is still running.", parent=parent
        )
        self.setInformativeText(
            "Keep it running in the background? The status bar shows its progress, and clicking there "
            "(or Model → Adapt to this gallery…) brings this window back."
        )
        self.keep_button = self.addButton("Keep running in the background", QMessageBox.AcceptRole)
        self.cancel_button = self.addButton("Cancel the adaptation", QMessageBox.DestructiveRole)
        self.back_button = self.addButton("Go back", QMessageBox.RejectRole)
        self.setDefaultButton(self.keep_button)
        self.setEscapeButton(self.back_button)


class AdaptDialog(QDialog):
    """Shows an :class:`AdaptRun`; searches keep running on the current model meanwhile. ``useModel``
    carries the new model's folder when the user switches to it; ``resumeRequested`` asks for a new
    run after a cancel or a failure (it resumes from the state kept)."""

    useModel = Signal(object)
    resumeRequested = Signal()

    def __init__(self, run: AdaptRun, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Adapt the model to this gallery")
        self.setMinimumWidth(560)
        self.run: AdaptRun | None = None
        self.question: CloseQuestion | None = None
        heading = QLabel(
            "Training a copy of the current model on this gallery's photos and pencil drawings made from "
            "them (no labels). Searches keep using the current model meanwhile. Cancel keeps the steps done: "
            "Resume continues from there, now or after a restart."
        )
        heading.setWordWrap(True)
        expectation = QLabel(
            "What to expect, as measured on PKU-Sketch sketches searching 4,922 photos (7 splits, "
            "benchmarks/results/adaptation.md): the sought person within the top 20 for 7 more sketches "
            "in 100 on average; at rank 1 for 2 more in 100, from 4 fewer to 10 more depending on the split. "
            "Review the first 20 candidates, not only the first."
        )
        expectation.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%p% (%v of %m steps)")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setToolTip(
            "Time left: the median time of the recent training steps times the steps left, plus the "
            "collapse guard's measurement at the end of each epoch, as long as the last one took"
        )
        self.losses = QLabel()
        self.losses.setToolTip("Training losses of the last step (lower: the model agrees more with itself)")
        self.guard = QLabel()
        self.guard.setWordWrap(True)
        self.guard.setToolTip(
            "Collapse guard, measured on gallery photos and their pencil drawings: the spread of the "
            "embedding and how often a drawing finds its own photo first. A run that collapses stops "
            "without writing a model."
        )
        self.use_button = QPushButton("Use the adapted model")
        self.background_button = QPushButton("Run in background")
        self.background_button.setToolTip("Hide this window; the status bar shows the progress")
        self.cancel_button = QPushButton("Cancel adaptation")
        self.resume_button = QPushButton("Resume")
        self.close_button = QPushButton("Close")
        self.buttons = QDialogButtonBox()
        for button, role in (
            (self.use_button, QDialogButtonBox.AcceptRole),
            (self.background_button, QDialogButtonBox.ActionRole),
            (self.resume_button, QDialogButtonBox.ActionRole),
            (self.cancel_button, QDialogButtonBox.ActionRole),
            (self.close_button, QDialogButtonBox.RejectRole),
        ):
            button.setAutoDefault(False)  # Enter never cancels a run nor hides it by chance
            self.buttons.addButton(button, role)  # shows the button: visibility is set after, in _show
        self.use_button.clicked.connect(self._use)
        self.background_button.clicked.connect(self.hide)
        self.cancel_button.clicked.connect(self._cancel)
        self.resume_button.clicked.connect(self.resumeRequested)
        self.close_button.clicked.connect(self.close)
        layout = QVBoxLayout(self)
        for widget in (heading, expectation, self.progress, self.status, self.losses, self.guard):
            layout.addWidget(widget)
        layout.addWidget(self.buttons)
        self.follow(run)

    def follow(self, run: AdaptRun) -> None:
        """Show ``run`` (a new one after Resume) in this window."""
        if self.run is not None:
            self.run.changed.disconnect(self._show)
        self.run = run
        run.changed.connect(self._show)
        self.losses.clear()
        self.progress.setRange(0, 0)  # busy until the first step count arrives
        self._show()

    def _show(self) -> None:
        run, progress = self.run, self.run.progress
        running = run.running()
        self.status.setText(run.stage())
        if run.state == "done":
            self.progress.setRange(0, max(1, progress.total if progress else 1))
            self.progress.setValue(self.progress.maximum())
        elif progress is not None and progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        elif not running:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if progress is not None and progress.losses:
            self.losses.setText("Last step's losses: " + ", ".join(f"{k} {v:.3f}" for k, v in progress.losses.items()))
        if progress is not None and progress.guard:
            self.guard.setText(
                f"After epoch {progress.epoch}: embedding spread {progress.guard['spread']:.4f}, "
                f"drawings finding their own photo first {100 * progress.guard['agreement']:.0f}%"
            )
        done = run.state == "done" and run.out is not None
        self.use_button.setEnabled(done)
        self.use_button.setDefault(done)
        self.background_button.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running and not run.cancelling)
        self.resume_button.setVisible(run.state in ("cancelled", "failed"))
        self.resume_button.setText("Try again" if run.state == "failed" else "Resume")
        self.close_button.setVisible(not running)
        if not running and self.question is not None and self.question.isVisible():
            self.question.done(QMessageBox.Cancel)  # nothing left to decide

    def _cancel(self) -> None:
        self.run.cancel()

    def _use(self) -> None:
        if self.run.state != "done" or self.run.out is None:
            return
        self.useModel.emit(self.run.out)
        self.accept()

    # -- closing: a running adaptation is never hidden without a word ------------------------------
    def _ask_what_to_do(self) -> None:
        if self.question is None:
            self.question = CloseQuestion(self)
            self.question.buttonClicked.connect(self._answered)
        self.question.open()

    def _answered(self, button) -> None:
        if button is self.question.keep_button:
            self.hide()
        elif button is self.question.cancel_button:
            self.run.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.run.running():
            event.ignore()
            self._ask_what_to_do()
        else:
            super().closeEvent(event)

    def reject(self) -> None:  # Escape
        if self.run.running():
            self._ask_what_to_do()
        else:
            super().reject()


class ModelChooser(QDialog):
    """Model → Use…: the bundled model and the models adapted in this data folder."""

    def __init__(self, data_dir: Path, current_sha256: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Use a model")
        self.setMinimumWidth(520)
        from core.model.registry import installed_models

        self.models: list[InstalledModel] = installed_models(data_dir)
        self.list = QListWidget()
        self.list.setAccessibleName("Installed models")
        for model in self.models:
            detail = "bundled" if model.bundled else f"adapted from {model.base or '?'} on {model.created or '?'}"
            current = " (in use)" if model.weights_sha256 == current_sha256 else ""
            item = QListWidgetItem(f"{model.name}{current}\n{detail}")
            item.setToolTip(f"{model.path}\nweights sha256 {model.weights_sha256}")
            self.list.addItem(item)
            if current:
                self.list.setCurrentItem(item)
        note = QLabel("Switching re-indexes the gallery for the chosen model; the others stay installed.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.list.setFocus(Qt.OtherFocusReason)

    def chosen(self) -> InstalledModel | None:
        row = self.list.currentRow()
        return self.models[row] if 0 <= row < len(self.models) else None
