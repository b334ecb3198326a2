"""Drawing on the canvas and waiting for the search, as a user would."""

from __future__ import annotations

GALLERY_SIZE = 8  # photos in the session's gallery


def draw_stroke(qtbot, canvas, points) -> None:
    """Press, move through ``points`` (widget coordinates) and release the left button."""
    from PySide6.QtCore import QPoint, Qt

    first, *rest = [QPoint(int(x), int(y)) for x, y in points]
    qtbot.mousePress(canvas, Qt.LeftButton, pos=first)
    for point in rest:
        qtbot.mouseMove(canvas, point)
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=rest[-1] if rest else first)


def draw_figure_strokes(qtbot, canvas) -> None:
    """Two strokes across the middle of the canvas widget."""
    w, h = canvas.width(), canvas.height()
    draw_stroke(qtbot, canvas, [(w * 0.5, h * 0.2), (w * 0.45, h * 0.4), (w * 0.5, h * 0.6), (w * 0.55, h * 0.8)])
    draw_stroke(qtbot, canvas, [(w * 0.35, h * 0.35), (w * 0.5, h * 0.33), (w * 0.65, h * 0.35)])


def wait_for_results(qtbot, window, count: int | None = None, timeout: int = 30000) -> None:
    def ready():
        return (
            not window.live.pending()
            and window.candidates.rowCount() > 0
            and (count is None or window.candidates.total() == count)
        )

    qtbot.waitUntil(ready, timeout=timeout)


def when_modal(kind, act, seen: list | None = None) -> None:
    """Once a modal ``kind`` dialog is up (one that ``exec`` runs), run ``act`` on it, noting it
    in ``seen``."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def poll() -> None:
        widget = QApplication.activeModalWidget()
        if isinstance(widget, kind) and widget.isVisible():
            if seen is not None:
                seen.append(widget)
            act(widget)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def click(text: str):
    """An ``act`` for :func:`when_modal`: press the message box button labelled ``text``."""

    def press(box) -> None:
        (button,) = [b for b in box.buttons() if b.text() == text]
        button.click()

    return press
