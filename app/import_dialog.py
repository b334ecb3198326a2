"""Import photos into the gallery: progress with count, rate and cancel while the import runs in the
background, then a summary that lists the files that failed and why."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QProgressBar, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.workers import TaskRunner
from core.types import ImportSummary


def summary_text(summary: ImportSummary) -> str:
    head = "Import cancelled" if summary.cancelled else "Import finished"
    parts = [f"{summary.added} added", f"{summary.updated} updated", f"{summary.unchanged} unchanged",
             f"{len(summary.failed)} failed"]
    return f"{head} in {summary.seconds:.1f} s: " + ", ".join(parts) + "."


class ImportDialog(QDialog):
    """Runs ``workspace.import_paths(roots)`` in the ``long`` pool; ``finished_import`` carries the
    summary (None if the import could not run)."""

    finished_import = Signal(object)

    def __init__(self, runner: TaskRunner, workspace, roots: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import photos")
        self.setMinimumWidth(560)
        self.summary: ImportSummary | None = None
        self.error: str | None = None
        self.roots = [str(r) for r in roots]

        self.heading = QLabel("Importing from " + ", ".join(self.roots))
        self.heading.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy until the files are counted
        self.counts = QLabel("Looking for photos…")
        self.current = QLabel()
        self.current.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.failures = QTreeWidget()
        self.failures.setHeaderLabels(["File", "Reason"])
        self.failures.setRootIsDecorated(False)
        self.failures.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.failures.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.failures.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.buttons.rejected.connect(self.cancel)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.progress)
        layout.addWidget(self.counts)
        layout.addWidget(self.current)
        layout.addWidget(self.failures, 1)
        layout.addWidget(self.buttons)

        def run_import(task):
            return workspace.import_paths(self.roots, progress=task.report, cancel=task.cancel)

        self.task = runner.submit(run_import, pool="long", on_result=self._finished, on_error=self._failed,
                                  on_progress=self._progress, on_cancel=self._cancelled_before_start,
                                  name="import", owner=self)
        if self.task is None:
            self._failed("the application is closing")

    def running(self) -> bool:
        return self.summary is None and self.error is None

    def _progress(self, progress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        self.counts.setText(f"{progress.done} of {progress.total} files · {progress.added} added · "
                            f"{progress.failed} failed · {progress.rate:.1f} files/s")
        if progress.current:
            self.current.setText(self.fontMetrics().elidedText(progress.current, Qt.ElideMiddle, 520))

    def cancel(self) -> None:
        if self.running() and self.task is not None:
            self.task.cancel.set()  # the import stops after the batch in flight
            self.counts.setText(self.counts.text() + " — cancelling…")
            self.buttons.setEnabled(False)
        else:
            self.reject()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.running():
            self.cancel()
            event.ignore()  # closes when the import has stopped
        else:
            super().closeEvent(event)

    def reject(self) -> None:
        if self.running():
            self.cancel()
        else:
            super().reject()

    def _finished(self, summary: ImportSummary) -> None:
        self.summary = summary
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.counts.setText(summary_text(summary))
        self.current.setText("Files that could not be imported:" if summary.failed else "")
        for failure in summary.failed:
            item = QTreeWidgetItem([failure.path, failure.reason])
            item.setToolTip(0, failure.path)
            self.failures.addTopLevelItem(item)
        self.failures.setVisible(bool(summary.failed))
        self._done()
        self.finished_import.emit(summary)

    def _failed(self, message: str) -> None:
        self.error = message
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.counts.setText(f"The import failed: {message}")
        self._done()
        self.finished_import.emit(None)

    def _cancelled_before_start(self) -> None:
        self._finished(ImportSummary(cancelled=True))

    def _done(self) -> None:
        self.buttons.clear()
        self.buttons.setStandardButtons(QDialogButtonBox.Close)
        self.buttons.setEnabled(True)
