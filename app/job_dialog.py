"""What every dialog of a long background job shares: Cancel (or closing the window) asks the job
to stop and waits for it, instead of closing over work that is still running."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QLabel


class CancellableJobDialog(QDialog):
    """Subclasses set ``self.task`` (the submitted job), ``self.buttons`` and implement
    :meth:`running` and :meth:`status_label` (where "cancelling…" is shown)."""

    task = None

    def running(self) -> bool:
        raise NotImplementedError

    def status_label(self) -> QLabel:
        raise NotImplementedError

    def cancel(self) -> None:
        if self.running() and self.task is not None:
            self.task.cancel.set()  # the job stops at its next check and says so when it has
            label = self.status_label()
            label.setText(label.text() + " — cancelling…")
            self.buttons.setEnabled(False)
        else:
            self.reject()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.running():
            self.cancel()
            event.ignore()  # closes when the job has stopped
        else:
            super().closeEvent(event)

    def reject(self) -> None:
        if self.running():
            self.cancel()
        else:
            super().reject()
