"""Long gallery jobs: importing photos, and indexing the catalogued photos for a new model. Progress
with count, rate and cancel while the job runs in the background, then a summary that lists the
files not added and why (failed, or a duplicate of another file), a list that can be copied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.job_dialog import CancellableJobDialog
from app.workers import Task, TaskRunner
from core.common.types import ImportSummary


def summary_text(summary: ImportSummary) -> str:
    head = "Import cancelled" if summary.cancelled else "Import finished"
    parts = [
        f"{summary.added} added",
        f"{summary.updated} updated",
        f"{summary.unchanged} unchanged",
        f"{len(summary.duplicates)} duplicate(s)",
        f"{len(summary.failed)} failed",
    ]
    return f"{head} in {summary.seconds:.1f} s: " + ", ".join(parts) + "."


def not_added_heading(summary: ImportSummary) -> str:
    parts = [f"{len(summary.failed)} failed"] if summary.failed else []
    if summary.duplicates:
        parts.append(f"{len(summary.duplicates)} duplicate(s) of files catalogued in their stead")
    return "Files not added: " + ", ".join(parts) + ":"


def indexing_text(summary: ImportSummary) -> str:
    head = "Indexing cancelled" if summary.cancelled else "Indexing finished"
    return f"{head} in {summary.seconds:.1f} s: {summary.updated} photo(s) indexed, {len(summary.failed)} failed."


class GalleryJobDialog(CancellableJobDialog):
    """Runs ``work(task) -> ImportSummary`` in the ``long`` pool; ``finished_import`` carries the
    summary (None if the job could not run); ``committed`` says that more photos were committed."""

    finished_import = Signal(object)
    committed = Signal()
    describe = staticmethod(summary_text)  # the summary's one-line text
    done_word = "added"  # what progress.added counts
    first_step = "Looking for photos…"  # shown until the first progress report

    def __init__(
        self,
        runner: TaskRunner,
        work: Callable[[Task], ImportSummary],
        title: str,
        heading: str,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(560)
        self.summary: ImportSummary | None = None
        self.error: str | None = None
        self._committed = 0  # photos committed, as the last progress report said

        self.heading = QLabel(heading)
        self.heading.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy until the files are counted
        self.counts = QLabel(self.first_step)
        self.counts.setWordWrap(True)  # a refusal names the data folder: it is read whole
        self.counts.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.current = QLabel()
        self.current.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.failures = QTreeWidget()  # the files not added: failed, or duplicates
        self.failures.setHeaderLabels(["File", "Why not added"])
        self.failures.setRootIsDecorated(False)
        self.failures.setSelectionMode(QTreeWidget.ExtendedSelection)
        self.failures.header().setSectionResizeMode(QHeaderView.Interactive)  # both columns hold paths
        self.failures.header().setStretchLastSection(True)
        self.failures.setMinimumHeight(160)
        self.failures.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.buttons.rejected.connect(self.cancel)
        self.copy_button = QPushButton("Copy list")
        self.copy_button.setToolTip("Copy the files not added, with why, one per line (file, tab, why)")
        self.copy_button.clicked.connect(self.copy_list)
        self.copy_button.hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.progress)
        layout.addWidget(self.counts)
        layout.addWidget(self.current)
        layout.addWidget(self.failures, 1)
        layout.addWidget(self.copy_button, 0, Qt.AlignLeft)
        layout.addWidget(self.buttons)

        self.task = runner.submit(
            work,
            pool="long",
            on_result=self._finished,
            on_error=self._failed,
            on_progress=self._progress,
            on_cancel=self._cancelled_before_start,
            name=title,
            owner=self,
        )
        if self.task is None:
            self._failed("the application is closing")

    def running(self) -> bool:
        return self.summary is None and self.error is None

    def _progress(self, progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        self.counts.setText(
            f"{progress.done} of {progress.total} files · {progress.added} {self.done_word} · "
            f"{progress.failed} failed · {progress.rate:.1f} files/s"
        )
        if progress.current:
            self.current.setText(self.fontMetrics().elidedText(progress.current, Qt.ElideMiddle, 520))
        if progress.added > self._committed:
            self._committed = progress.added
            self.committed.emit()

    def status_label(self) -> QLabel:
        return self.counts

    def _finished(self, summary: ImportSummary) -> None:
        self.summary = summary
        if summary.cancelled:  # the bar stays where the job stopped
            if self.progress.maximum() == 0:  # stopped before the files were counted
                self.progress.setRange(0, 1)
                self.progress.setValue(0)
            self.progress.setFormat("Cancelled at %v of %m")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
        self.counts.setText(self.describe(summary))
        rows = [(f.path, f.reason) for f in summary.failed]
        rows += [(d.path, f"duplicate of {d.of}") for d in summary.duplicates]
        self.current.setText(not_added_heading(summary) if rows else "")
        for path, why in rows:
            item = QTreeWidgetItem([path, why])
            item.setToolTip(0, path)
            item.setToolTip(1, why)
            self.failures.addTopLevelItem(item)
        self.failures.setVisible(bool(rows))
        self.copy_button.setVisible(bool(rows))
        if rows:  # room for the list: the paths in both columns read whole on a common screen
            self.resize(max(self.width(), 900), max(self.height(), 420))
            self.failures.setColumnWidth(0, self.width() // 2 - 30)
        self._done()
        self.finished_import.emit(summary)

    def copy_list(self) -> None:
        """The files not added, one per line: the file, a tab, why."""
        items = (self.failures.topLevelItem(i) for i in range(self.failures.topLevelItemCount()))
        QApplication.clipboard().setText("\n".join(f"{item.text(0)}\t{item.text(1)}" for item in items) + "\n")

    def _failed(self, message: str) -> None:
        self.error = message
        if self.progress.maximum() == 0:  # refused, or failed before the files were counted
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("Not started")
        else:  # where it stopped
            self.progress.setFormat("Stopped at %v of %m")
        self.counts.setText(f"{self.windowTitle()} failed: {message}")
        self._done()
        self.finished_import.emit(None)

    def _cancelled_before_start(self) -> None:
        self._finished(ImportSummary(cancelled=True))

    def _done(self) -> None:
        self.buttons.clear()
        self.buttons.setStandardButtons(QDialogButtonBox.Close)
        self.buttons.setEnabled(True)


class ImportDialog(GalleryJobDialog):
    """Imports ``roots`` (files and folders) into the workspace's gallery."""

    def __init__(self, runner: TaskRunner, workspace, roots: list[Path], parent: QWidget | None = None):
        self.roots = list(roots)

        def run_import(task: Task) -> ImportSummary:
            return workspace.import_paths(self.roots, progress=task.report, cancel=task.cancel)

        shown = ", ".join(map(str, self.roots))
        super().__init__(runner, run_import, "Import photos", f"Importing from {shown}", parent)


class IndexingDialog(GalleryJobDialog):
    """Embeds the catalogued photos that have no embedding for the workspace's model: after a model
    change the gallery is searchable again without importing anything."""

    describe = staticmethod(indexing_text)
    done_word = "indexed"
    first_step = "Reading the first photos…"

    def __init__(self, runner: TaskRunner, workspace, count: int, parent: QWidget | None = None):
        def run_indexing(task: Task) -> ImportSummary:
            return workspace.gallery.embed_missing(progress=task.report, cancel=task.cancel)

        name = workspace.models.info().name
        super().__init__(
            runner,
            run_indexing,
            "Index photos",
            f"The model is new to this gallery: indexing {count} photo(s) for {name}. "
            "Until it is done, searches see only the photos already indexed.",
            parent,
        )
