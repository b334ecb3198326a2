"""The candidate grid's model: ranked candidates shown a page at a time (canFetchMore/fetchMore),
thumbnails from the catalogue decoded off the GUI thread and cached."""

from __future__ import annotations

from collections import OrderedDict
from html import escape

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

from app.workers import TaskRunner
from core.types import AttributeSource, AttributeValue, Candidate

PAGE = 24
THUMB_SIZE = QSize(100, 200)
CandidateRole = Qt.UserRole + 1
PhotoIdRole = Qt.UserRole + 2


# What an investigator scans a grid for first; other attributes fill the caption when these are unknown.
CAPTION_ATTRIBUTES = ("gender", "upper_color", "lower_color", "hat", "backpack", "bag")
CAPTION_LENGTH = 3
_GARMENT = {"upper": "top", "lower": "bottom"}


def value_label(name: str, value: str) -> str:
    """A value that reads without its attribute's name beside it: ``backpack`` / ``no backpack`` for
    yes/no attributes, ``white top`` for ``upper_color=white``, the value itself otherwise."""
    if value in ("yes", "no"):
        label = name.replace("_", " ")
        return label if value == "yes" else f"no {label}"
    if name.endswith("_color"):
        part = name.removesuffix("_color")
        return f"{value} {_GARMENT.get(part, part)}"
    return value


def format_attribute(value: AttributeValue, rich: bool = False, name: str | None = None) -> str:
    """Manual and imported values as they are (bold in rich text); model predictions as
    ``~value 73%`` (italic in rich text). With ``name``, the value reads on its own (``no hat``)."""
    shown = value_label(name, value.value) if name else value.value
    if value.source == AttributeSource.MODEL:
        text = f"~{shown} {value.confidence:.0%}"
        return f"<i>{escape(text)}</i>" if rich else text
    return f"<b>{escape(shown)}</b>" if rich else shown


def caption(attributes: dict[str, AttributeValue]) -> str:
    """The few attributes shown under a thumbnail, each readable on its own."""
    names = [n for n in CAPTION_ATTRIBUTES if n in attributes]
    names += [n for n in sorted(attributes) if n not in names]
    return " ".join(format_attribute(attributes[n], name=n) for n in names[:CAPTION_LENGTH])


def attributes_html(attributes: dict[str, AttributeValue]) -> str:
    if not attributes:
        return "<i>no attributes</i>"
    return "<br>".join(f"{escape(name)}: {format_attribute(a, rich=True)}" for name, a in sorted(attributes.items()))


class ThumbnailCache(QObject):
    """Photo id -> QPixmap; misses are decoded in the ``io`` pool and announced by ``loaded``."""

    loaded = Signal(int)

    def __init__(self, runner: TaskRunner, capacity: int = 2000, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.workspace = None
        self.capacity = capacity
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._pending: set[int] = set()
        self._failed: set[int] = set()
        self.placeholder = self._make_placeholder()

    @staticmethod
    def _make_placeholder() -> QPixmap:
        pixmap = QPixmap(THUMB_SIZE)
        pixmap.fill(QColor(225, 225, 228))
        painter = QPainter(pixmap)
        painter.setPen(QColor(160, 160, 165))
        painter.drawText(pixmap.rect(), Qt.AlignCenter, "…")
        painter.end()
        return pixmap

    def set_workspace(self, workspace) -> None:
        self.workspace = workspace
        self.clear()

    def clear(self) -> None:
        self._pixmaps.clear()
        self._failed.clear()

    def forget(self, photo_id: int) -> None:
        self._pixmaps.pop(photo_id, None)
        self._failed.discard(photo_id)

    def get(self, photo_id: int) -> QPixmap:
        pixmap = self._pixmaps.get(photo_id)
        if pixmap is not None:
            self._pixmaps.move_to_end(photo_id)
            return pixmap
        if photo_id not in self._pending and photo_id not in self._failed and self.workspace is not None:
            self._pending.add(photo_id)
            workspace = self.workspace

            def decode(task, photo_id=photo_id):
                image = QImage.fromData(workspace.thumbnail(photo_id))
                if image.isNull():
                    raise ValueError(f"thumbnail of photo {photo_id} cannot be decoded")
                if image.width() > THUMB_SIZE.width() or image.height() > THUMB_SIZE.height():
                    image = image.scaled(THUMB_SIZE, Qt.KeepAspectRatio, Qt.SmoothTransformation)
                return photo_id, image

            self.runner.submit(
                decode,
                pool="io",
                on_result=self._decoded,
                on_error=lambda _message, pid=photo_id: self._failed_one(pid),
                name="thumbnail",
            )
        return self.placeholder

    def _decoded(self, result) -> None:
        photo_id, image = result
        self._pending.discard(photo_id)
        self._pixmaps[photo_id] = QPixmap.fromImage(image)
        while len(self._pixmaps) > self.capacity:
            self._pixmaps.popitem(last=False)
        self.loaded.emit(photo_id)

    def _failed_one(self, photo_id: int) -> None:
        self._pending.discard(photo_id)
        self._failed.add(photo_id)


class CandidatesModel(QAbstractListModel):
    """All ranked candidates are held; rows appear ``PAGE`` at a time as the view scrolls."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.candidates: list[Candidate] = []
        self._shown = 0
        self._rows_by_photo: dict[int, int] = {}
        thumbnails.loaded.connect(self._thumbnail_loaded)

    # -- content -----------------------------------------------------------------------------
    def set_candidates(self, candidates: list[Candidate]) -> None:
        self.beginResetModel()
        self.candidates = list(candidates)
        self._shown = min(PAGE, len(self.candidates))
        self._rows_by_photo = {c.photo_id: i for i, c in enumerate(self.candidates)}
        self.endResetModel()

    def clear(self) -> None:
        self.set_candidates([])

    def candidate(self, row: int) -> Candidate | None:
        return self.candidates[row] if 0 <= row < len(self.candidates) else None

    def total(self) -> int:
        return len(self.candidates)

    def replace_attributes(self, photo_id: int, attributes: dict[str, AttributeValue]) -> None:
        row = self._rows_by_photo.get(photo_id)
        if row is None:
            return
        old = self.candidates[row]
        self.candidates[row] = Candidate(old.rank, old.photo_id, old.path, old.score, dict(attributes))
        if row < self._shown:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.DisplayRole, Qt.ToolTipRole])

    def ensure_shown(self, row: int) -> None:
        """Make rows up to ``row`` visible (keyboard navigation beyond the fetched page)."""
        if row >= self._shown and row < len(self.candidates):
            self.beginInsertRows(QModelIndex(), self._shown, row)
            self._shown = row + 1
            self.endInsertRows()

    # -- Qt model ----------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._shown

    def canFetchMore(self, parent: QModelIndex = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and self._shown < len(self.candidates)

    def fetchMore(self, parent: QModelIndex = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid():
            return
        more = min(PAGE, len(self.candidates) - self._shown)
        if more > 0:
            self.beginInsertRows(QModelIndex(), self._shown, self._shown + more - 1)
            self._shown += more
            self.endInsertRows()

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid() or index.row() >= self._shown:
            return None
        candidate = self.candidates[index.row()]
        if role == Qt.DisplayRole:
            text = f"#{candidate.rank}  {candidate.score:.3f}"
            if candidate.attributes:
                text += f"\n{caption(candidate.attributes)}"
            return text
        if role == Qt.DecorationRole:
            return self.thumbnails.get(candidate.photo_id)
        if role == Qt.ToolTipRole:
            return (
                f"<b>#{candidate.rank}</b> score {candidate.score:.3f}<br>{escape(candidate.path)}<br>"
                f"{attributes_html(candidate.attributes)}"
            )
        if role == CandidateRole:
            return candidate
        if role == PhotoIdRole:
            return candidate.photo_id
        if role == Qt.AccessibleTextRole:
            return f"Rank {candidate.rank}, score {candidate.score:.3f}"
        return None

    def _thumbnail_loaded(self, photo_id: int) -> None:
        row = self._rows_by_photo.get(photo_id)
        if row is not None and row < self._shown:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.DecorationRole])
