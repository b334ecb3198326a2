"""One adaptation of the model to the open gallery, run in the ``train`` pool: the stage it is at, the
steps done and the time left, and cancel. The run belongs to the window's model switcher, not to
the dialog that shows it, so hiding that dialog never loses it and there is one run at a time."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Signal

from app.workers import Cancelled, Task, TaskRunner
from core.common.private_files import make_private_folder

READING = "Reading the gallery…"


def adapted_folder(data_dir: Path, base_sha256: str, photos_sha256: str) -> Path:
    """One folder per (base model, gallery contents): adapting again the same gallery from the same
    model resumes the run that was cancelled or interrupted there. Called on the training thread:
    the model registry imports torch, seconds the window must not stand still for."""
    from core.model.registry import models_dir

    return models_dir(data_dir) / f"adapted-{photos_sha256[:8]}-from-{base_sha256[:8]}"


def describe_time_left(seconds: float) -> str:
    """Rounded as a person would say it: the estimate is a median of recent steps, not a promise."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 90:
        return f"about {10 * round(seconds / 10):.0f} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


class AdaptRun(QObject):
    """``state``: running, done, cancelled or failed; ``cancelling`` once Cancel was asked for."""

    changed = Signal()  # progress, a cancel asked for, or the end
    ended = Signal(str)  # the final state

    def __init__(
        self,
        runner: TaskRunner,
        model_dir: Path,
        data_dir: Path,
        base_sha256: str,
        settings=None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.runner = runner
        self.model_dir, self.data_dir, self.base_sha256 = Path(model_dir), Path(data_dir), base_sha256
        self.settings = settings
        self.state = "running"
        self.cancelling = False
        self.progress = None  # the latest training.adapt.AdaptProgress
        self.out: Path | None = None
        self.existed = False  # the gallery was adapted from this model before: nothing to train
        self.message = ""
        self._kept: bool | None = None  # after a cancel: whether a state to resume from is on disk
        self.task = runner.submit(
            self._work,
            pool="train",
            on_result=self._finished,
            on_error=self._failed,
            on_progress=self._progressed,
            on_cancel=self._cancelled,
            name="adapt",
            owner=self,
        )
        if self.task is None:
            self.state, self.message = "failed", "Adaptation failed: the application is closing."

    def _work(self, task: Task):
        from training.adapt import STATE_FILE, AdaptationCancelled, AdaptSettings, adapt, default_work_dir, read_gallery

        gallery = read_gallery(self.data_dir)
        out = adapted_folder(self.data_dir, self.base_sha256, gallery.photos_sha256)
        if out.is_dir():
            return out, True
        make_private_folder(out.parent)  # adapted models hold what the gallery taught them
        try:
            adapt(
                self.model_dir,
                self.data_dir,
                out,
                settings=self.settings or AdaptSettings(),
                progress=task.report,
                cancel=task.cancel,
                device=None,
                command="SketchSearch: Model > Adapt to this gallery",
            )
        except AdaptationCancelled as exc:
            self._kept = (default_work_dir(out) / STATE_FILE).is_file()  # read after the cancelled signal
            raise Cancelled() from exc
        return out, False

    # -- asked from the window ---------------------------------------------------------------------
    def running(self) -> bool:
        return self.state == "running"

    def cancel(self) -> None:
        """The run stops at its next look at the flag (within a step) and keeps a whole state or nothing."""
        if self.running() and not self.cancelling and self.task is not None:
            self.cancelling = True
            self.runner.cancel(self.task)
            self.changed.emit()

    def stop(self, msecs: int) -> bool:
        """On quitting: cancel and wait until the run has stopped (its state written whole), a step
        at most. The window keeps painting meanwhile (what it says: stopping) but takes no input."""
        self.cancel()
        deadline = time.monotonic() + msecs / 1000
        pool = self.runner.pools["train"]
        while not pool.waitForDone(50):
            if time.monotonic() > deadline:
                return False
            QCoreApplication.processEvents(QEventLoop.ExcludeUserInputEvents)
        return True

    # -- what is shown -----------------------------------------------------------------------------
    def stage(self) -> str:
        """What the run does now, the steps done and the time left (the dialog's status line)."""
        if not self.running():
            return self.message
        p = self.progress
        if p is None:
            text = READING
        elif p.message:
            text = p.message
        else:
            text = f"Epoch {p.epoch} of {p.epochs} · step {p.step} of {p.steps}"
        if self.cancelling:  # the time left no longer applies: the run stops within the step under way
            return f"Cancelling — {text}"
        if p is not None and p.seconds_left is not None:
            text += f" · {describe_time_left(p.seconds_left)}"
        return text

    def percent(self) -> int | None:
        p = self.progress
        return 100 * p.done // p.total if p is not None and p.total else None  # as the progress bar shows it

    def summary(self) -> str:
        """One short line for the status bar."""
        if self.state == "done":
            return "Adapted model ready"
        if self.state == "cancelled":
            return "Adaptation cancelled"
        if self.state == "failed":
            return "Adaptation failed"
        if self.cancelling:
            return "Adapting the model: cancelling…"
        p = self.progress
        stage = (p.message if p is not None and p.message else READING).lower()
        if self.percent() is None:
            return f"Adapting the model: {stage}"
        if p.seconds_left is None:
            return f"Adapting the model: {self.percent()}% · {stage}"
        return f"Adapting the model: {self.percent()}% · {describe_time_left(p.seconds_left)}"

    # -- reported by the task ----------------------------------------------------------------------
    def _progressed(self, progress) -> None:
        self.progress = progress
        self.changed.emit()

    def _finished(self, result) -> None:
        self.out, self.existed = result
        self.message = (
            f"This gallery was already adapted from this model: {self.out}"
            if self.existed
            else f"Adapted model written to {self.out}. Using it re-indexes the gallery."
        )
        self._end("done")

    def _failed(self, message: str) -> None:
        self.message = f"Adaptation failed: {message}"
        self._end("failed")

    def _cancelled(self) -> None:
        p = self.progress
        if self._kept:
            done = f" after {p.done} of {p.total} steps" if p is not None and p.total else ""
            self.message = f"Adaptation cancelled{done}. What it trained is kept: Resume continues from there."
        elif self._kept is None:
            self.message = "Adaptation cancelled before it started."
        else:
            self.message = "Adaptation cancelled before any step was trained; nothing was kept."
        self._end("cancelled")

    def _end(self, state: str) -> None:
        self.state = state
        self.changed.emit()
        self.ended.emit(state)
