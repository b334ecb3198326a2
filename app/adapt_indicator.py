"""The status bar's button for an adaptation that is alive (running, or ended with its window not
closed yet): how far it got and the time left; a click shows its window. Light on purpose: the
window builds it at start, before anything of the training is loaded."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QPushButton, QSizePolicy, QWidget

MIN_WIDTH = 120  # its text changes with every step: it must never widen the window


class AdaptIndicator(QPushButton):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.full_text = ""
        self.setFlat(True)
        font = self.font()
        font.setUnderline(True)  # flat, it would read as a label: underlined, it reads as a link
        self.setFont(font)
        self.setCursor(Qt.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)  # a button's own policy never shrinks
        self.hide()

    def show_run(self, run) -> None:
        """``run``: an AdaptRun, or None once there is none to show."""
        if run is None:
            self.hide()
            return
        self.full_text = run.summary()
        self.setToolTip(f"{self.full_text}\nClick to show the adaptation's window")
        self._elide()
        self.updateGeometry()
        self.show()

    def _elide(self) -> None:
        room = max(0, self.width() - 12)
        self.setText(self.fontMetrics().elidedText(self.full_text, Qt.ElideRight, room))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def sizeHint(self) -> QSize:  # noqa: N802 - the whole text when there is room
        return QSize(self.fontMetrics().horizontalAdvance(self.full_text) + 16, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(MIN_WIDTH, super().minimumSizeHint().height())
