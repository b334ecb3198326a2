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
