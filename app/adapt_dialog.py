"""Model menu dialogs: adapting the model to the open gallery (in the background, with progress,
cancel and resume) and choosing among the installed models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.job_dialog import CancellableJobDialog
from app.workers import Cancelled, Task, TaskRunner
from core.common.private_files import make_private_folder
from core.model.registry import InstalledModel, installed_models, models_dir


def adapted_folder(data_dir: Path, base_sha256: str, photos_sha256: str) -> Path:
    """One folder per (base model, gallery contents): adapting again the same gallery from the same
    model resumes the run that was cancelled or interrupted there."""
    return models_dir(data_dir) / f"adapted-{photos_sha256[:8]}-from-{base_sha256[:8]}"


class AdaptDialog(CancellableJobDialog):
    """Adapts ``model_dir`` to the gallery in ``data_dir`` in the ``train`` pool; searches keep
    running on the current model meanwhile. ``useModel`` carries the new model's folder when the
    user chooses to switch to it."""

    useModel = Signal(object)
    finishedRun = Signal(str)  # "done", "cancelled" or "failed"

    def __init__(
        self,
        runner: TaskRunner,
        model_dir: Path,
        data_dir: Path,
        base_sha256: str,
        settings=None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Adapt the model to this gallery")
        self.setMinimumWidth(560)
        self.state = "running"
        self.out: Path | None = None
        self.message = ""
        heading = QLabel(
            "Training a copy of the current model on this gallery's photos and pencil drawings made from "
            "them (no labels). Searches keep using the current model. Cancel keeps what is done: adapt "
            "again to resume."
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
        self.progress.setRange(0, 0)
        self.status = QLabel("Reading the gallery…")
        self.status.setWordWrap(True)
        self.guard = QLabel()
        self.guard.setWordWrap(True)
        self.guard.setToolTip(
            "Collapse guard, measured on gallery photos and their pencil drawings: the spread of the "
            "embedding and how often a drawing finds its own photo first. A run that collapses stops "
            "without writing a model."
        )
        self.use_button = QPushButton("Use the adapted model")
        self.use_button.hide()
        self.use_button.clicked.connect(self._use)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.buttons.addButton(self.use_button, QDialogButtonBox.AcceptRole)
        self.buttons.rejected.connect(self.cancel)
        layout = QVBoxLayout(self)
        for widget in (heading, expectation, self.progress, self.status, self.guard):
            layout.addWidget(widget)
        layout.addWidget(self.buttons)

        def work(task: Task):
            from training.adapt import AdaptationCancelled, AdaptSettings, adapt, read_gallery

            gallery = read_gallery(data_dir)
            out = adapted_folder(data_dir, base_sha256, gallery.photos_sha256)
            if out.is_dir():
                return out, True
            make_private_folder(out.parent)  # adapted models hold what the gallery taught them
            try:
                adapt(
                    model_dir,
                    data_dir,
                    out,
                    settings=settings or AdaptSettings(),
                    progress=task.report,
                    cancel=task.cancel,
                    device=None,
                    command="SketchSearch: Model > Adapt to this gallery",
                )
            except AdaptationCancelled as exc:
                raise Cancelled() from exc
            return out, False

        self.task = runner.submit(
            work,
            pool="train",
            on_result=self._finished,
            on_error=self._failed,
            on_progress=self._progress,
            on_cancel=self._cancelled,
            name="adapt",
            owner=self,
        )
        if self.task is None:
            self._failed("the application is closing")

    def running(self) -> bool:
        return self.state == "running"

    def _progress(self, progress) -> None:
        if progress.steps:
            total = progress.epochs * progress.steps
            self.progress.setRange(0, total)
            self.progress.setValue((progress.epoch - 1) * progress.steps + progress.step)
        text = (
            progress.message or f"Epoch {progress.epoch} of {progress.epochs}, step {progress.step} of {progress.steps}"
        )
        if progress.losses:
            text += " · loss " + ", ".join(f"{k} {v:.3f}" for k, v in progress.losses.items())
        self.status.setText(text)
        if progress.guard:
            self.guard.setText(
                f"After epoch {progress.epoch}: embedding spread {progress.guard['spread']:.4f}, "
                f"drawings finding their own photo first {100 * progress.guard['agreement']:.0f}%"
            )

    def status_label(self) -> QLabel:
        return self.status

    def _finished(self, result) -> None:
        self.out, existed = result
        self.state = "done"
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.message = (
            f"This gallery was already adapted from this model: {self.out}"
            if existed
            else f"Adapted model written to {self.out}. Switching to it re-indexes the gallery."
        )
        self.status.setText(self.message)
        self.use_button.show()
        self._done()

    def _failed(self, message: str) -> None:
        self.state = "failed"
        self.message = message
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(f"Adaptation failed: {message}")
        self._done()

    def _cancelled(self) -> None:
        self.state = "cancelled"
        self.message = "Adaptation cancelled; Model → Adapt to this gallery… resumes it."
        self.status.setText(self.message)
        self._done()

    def _done(self) -> None:
        self.buttons.removeButton(self.buttons.button(QDialogButtonBox.Cancel))
        self.buttons.addButton(QDialogButtonBox.Close)
        self.buttons.setEnabled(True)
        self.finishedRun.emit(self.state)

    def _use(self) -> None:
        self.useModel.emit(self.out)
        self.accept()


class ModelChooser(QDialog):
    """Model → Use…: the bundled model and the models adapted in this data folder."""

    def __init__(self, data_dir: Path, current_sha256: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Use a model")
        self.setMinimumWidth(520)
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
