"""The candidate grid's model: ranked candidates shown a page at a time (canFetchMore/fetchMore),
thumbnails from the catalogue decoded off the GUI thread and cached. A candidate's review mark is
that of the search on screen; a photo marked in an earlier search of the open case shows that mark
too, dimmed and badged with when and in which search it was made."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from html import escape
from pathlib import PurePath

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap

from app.attribute_text import attributes_html, caption, format_attribute, local_time, value_label  # noqa: F401 - re-exported
from app.workers import TaskRunner
from core.casework.records import CaseMark, ReviewMark
from core.common.errors import ImageLoadError
from core.common.types import AttributeValue, Candidate

PAGE = 24
THUMB_SIZE = QSize(100, 200)
CandidateRole = Qt.UserRole + 1
PhotoIdRole = Qt.UserRole + 2
MarkRole = Qt.UserRole + 3
EarlierMarkRole = Qt.UserRole + 4  # the case's mark on the photo from an earlier search (CaseMark), if any

NOT_REVIEWED = "not reviewed"  # the filter value for candidates without a mark
MARK_COLOURS = {ReviewMark.POSSIBLE: QColor(215, 240, 210), ReviewMark.EXCLUDED: QColor(235, 225, 225)}
EARLIER_COLOURS = {ReviewMark.POSSIBLE: QColor(238, 246, 236), ReviewMark.EXCLUDED: QColor(244, 240, 240)}
BADGE_COLOURS = {ReviewMark.POSSIBLE: QColor(80, 110, 80, 215), ReviewMark.EXCLUDED: QColor(120, 85, 85, 215)}
MARK_SYMBOLS = {ReviewMark.POSSIBLE: "✓ possible lead", ReviewMark.EXCLUDED: "✗ excluded"}
MARK_LETTERS = {ReviewMark.POSSIBLE: "P", ReviewMark.EXCLUDED: "X"}


def file_name(candidate: Candidate) -> str:
    return PurePath(candidate.path).name


def mark_time(moment: datetime, today: datetime | None = None) -> str:
    """A recorded (UTC) time in local time: the hour today, else the date too."""
    local = moment.replace(tzinfo=UTC).astimezone() if moment.tzinfo is None else moment.astimezone()
    today = today or datetime.now().astimezone()
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%Y-%m-%d %H:%M}"


def earlier_badge(earlier: CaseMark) -> str:
    """``P · search 12 · 14:03``: the mark, the search it was made in, and when."""
    return f"{MARK_LETTERS[earlier.mark]} · search {earlier.search_id} · {mark_time(earlier.at)}"


def card_text(candidate: Candidate, mark: ReviewMark | None = None) -> str:
    """Under a thumbnail: rank and score (and the review mark), then the file name and photo id, then
    a short caption, or instead a warning that the file is no longer the one ranked. (A mark from an
    earlier search of the case is on the thumbnail's badge.)"""
    first = f"#{candidate.rank} · score {candidate.score:.3f}" + (f" · {MARK_SYMBOLS[mark]}" if mark else "")
    lines = [first, f"{file_name(candidate)} · id {candidate.photo_id}"]
    if candidate.file.warning:  # the ranked photo is the one imported, not what is on disk now
        lines.append(f"\u26a0 {candidate.file.warning}")
    elif candidate.attributes:
        lines.append(caption(candidate.attributes))
    return "\n".join(lines)


def earlier_html(earlier: CaseMark) -> str:
    """The tooltip's lines on a mark made in an earlier search of the case."""
    note = f": {escape(earlier.note)}" if earlier.note else ""
    return (
        f"<b>Earlier in this case: {MARK_SYMBOLS[earlier.mark]}</b><br>"
        f"in search {earlier.search_id} (rank {earlier.rank}), {escape(local_time(earlier.at))}, "
        f"by {escape(earlier.operator)}{note}<br><i>Not a mark of this search: mark it here to record one.</i><br>"
    )


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
                    # an expected data problem (a damaged stored thumbnail): the card keeps its placeholder
                    raise ImageLoadError(f"thumbnail of photo {photo_id}", "cannot be decoded")
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
    """All ranked candidates are held; rows appear ``PAGE`` at a time as the view scrolls. Review
    marks are shown on the candidates, and the rows can be limited to one mark (or to none)."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.all_candidates: list[Candidate] = []
        self.candidates: list[Candidate] = []  # those the mark filter keeps, in rank order
        self.marks: dict[int, ReviewMark] = {}  # made in the search on screen
        self.earlier: dict[int, CaseMark] = {}  # the open case's marks from its other searches
        self.mark_filter: ReviewMark | str | None = None  # None: all; NOT_REVIEWED: unmarked only
        self._badged: dict[tuple[int, int, str], QPixmap] = {}
        self._shown = 0
        self._rows_by_photo: dict[int, int] = {}
        thumbnails.loaded.connect(self._thumbnail_loaded)

    # -- content -----------------------------------------------------------------------------
    def set_candidates(self, candidates: list[Candidate]) -> None:
        self.all_candidates = list(candidates)
        self._shown = 0  # a new ranking starts at its first page
        self._refilter()

    def set_marks(self, marks: dict[int, ReviewMark], earlier: dict[int, CaseMark] | None = None) -> None:
        """The marks of the search on screen, and the case's marks made in its other searches."""
        self.marks = dict(marks)
        self.earlier = {pid: m for pid, m in (earlier or {}).items() if pid not in self.marks}
        self._badged.clear()
        self._refilter(keep_rows=True)

    def set_mark_filter(self, mark: ReviewMark | str | None) -> None:
        self.mark_filter = mark
        self._refilter()

    def mark(self, photo_id: int) -> ReviewMark | None:
        return self.marks.get(photo_id)

    def shown_mark(self, photo_id: int) -> ReviewMark | None:
        """The mark a card shows: this search's, else the case's earlier one."""
        earlier = self.earlier.get(photo_id)
        return self.marks.get(photo_id) or (earlier.mark if earlier else None)

    def _keeps(self, candidate: Candidate) -> bool:
        mark = self.shown_mark(candidate.photo_id)
        if self.mark_filter is None:
            return True
        if self.mark_filter == NOT_REVIEWED:
            return mark is None
        return mark == self.mark_filter

    def _refilter(self, keep_rows: bool = False) -> None:
        """Apply the mark filter. With ``keep_rows`` (new marks) and the same rows kept, they are
        repainted rather than reset, so that the selection (the next card to mark) stays."""
        kept = [c for c in self.all_candidates if self._keeps(c)]
        if keep_rows and kept == self.candidates:
            if self._shown:
                self.dataChanged.emit(self.index(0), self.index(self._shown - 1))
            return
        self.beginResetModel()
        self.candidates = kept
        self._shown = min(max(PAGE, self._shown), len(self.candidates))
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
        self.candidates[row] = Candidate(old.rank, old.photo_id, old.path, old.score, dict(attributes), old.file)
        self.all_candidates = [self.candidates[row] if c.photo_id == photo_id else c for c in self.all_candidates]
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
        mark = self.marks.get(candidate.photo_id)
        earlier = None if mark else self.earlier.get(candidate.photo_id)
        if role == Qt.DisplayRole:
            return card_text(candidate, mark)
        if role == Qt.BackgroundRole:
            return MARK_COLOURS.get(mark) if mark else EARLIER_COLOURS.get(earlier.mark) if earlier else None
        if role == MarkRole:
            return mark
        if role == EarlierMarkRole:
            return earlier
        if role == Qt.DecorationRole:
            thumbnail = self.thumbnails.get(candidate.photo_id)
            return self._with_badge(candidate.photo_id, thumbnail, earlier) if earlier else thumbnail
        if role == Qt.ToolTipRole:
            return (
                f"<b>#{candidate.rank}</b> · score {candidate.score:.3f} (sketch–photo similarity)<br>"
                f"<b>{escape(file_name(candidate))}</b> · photo id {candidate.photo_id}<br>"
                + (f"<b>{candidate.file.warning}</b><br>" if candidate.file.warning else "")
                + (f"<b>{MARK_SYMBOLS[mark]}</b> (in this search)<br>" if mark else "")
                + (earlier_html(earlier) if earlier else "")
                + f"<small>{escape(candidate.path)}</small><br>{attributes_html(candidate.attributes, origin=True)}"
            )
        if role == CandidateRole:
            return candidate
        if role == PhotoIdRole:
            return candidate.photo_id
        if role == Qt.AccessibleTextRole:
            name = file_name(candidate)
            return (
                f"Rank {candidate.rank}, score {candidate.score:.3f}, {name}, photo id {candidate.photo_id}"
                + (f", {mark.label}" if mark else "")
                + (f", marked {earlier.mark.label} earlier in search {earlier.search_id}" if earlier else "")
                + (f", {candidate.file.warning}" if candidate.file.warning else "")
            )
        return None

    def _with_badge(self, photo_id: int, thumbnail: QPixmap, earlier: CaseMark) -> QPixmap:
        """The thumbnail with a band across the foot of the card: ``earlier P``, then the search and
        the time, in the mark's colour greyed (it is not a mark of this search)."""
        text = earlier_badge(earlier)
        key = (photo_id, thumbnail.cacheKey(), text)
        badged = self._badged.get(key)
        if badged is None:
            badged = QPixmap(max(thumbnail.width(), THUMB_SIZE.width()), thumbnail.height())
            badged.fill(Qt.transparent)
            painter = QPainter(badged)
            painter.drawPixmap((badged.width() - thumbnail.width()) // 2, 0, thumbnail)
            font = QFont(painter.font())
            font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
            painter.setFont(font)
            letter, rest = text.split(" · ", 1)
            lines = f"earlier {letter}\n{rest}"
            flags = Qt.AlignHCenter | Qt.AlignTop | Qt.TextWordWrap
            needed = painter.fontMetrics().boundingRect(QRect(0, 0, badged.width() - 4, 200), flags, lines)
            band = QRect(
                0, badged.height() - needed.height() - 4, badged.width(), needed.height() + 4
            )  # not over a face
            painter.fillRect(band, BADGE_COLOURS[earlier.mark])
            painter.setPen(QColor(250, 250, 250))
            painter.drawText(band.adjusted(2, 2, -2, -2), flags, lines)
            painter.end()
            self._badged[key] = badged
        return badged

    def _thumbnail_loaded(self, photo_id: int) -> None:
        row = self._rows_by_photo.get(photo_id)
        if row is not None and row < self._shown:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.DecorationRole])
