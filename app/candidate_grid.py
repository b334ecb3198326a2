"""The ranked candidates: a grid of cards under a header (which review marks to show, the state of
the search, top K) and a warning when the ranking is weak. An empty gallery shows, in place of the
grid, what to do first and the button to do it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.candidates_model import NOT_REVIEWED, THUMB_SIZE, CandidatesModel
from app.settings import MAX_TOP_K
from core.casework.query_check import measure_source
from core.casework.records import ReviewMark
from core.casework.weak import weak_result_warning

MARK_FILTERS = (
    ("All candidates", None),
    ("Possible leads", ReviewMark.POSSIBLE),
    ("Excluded", ReviewMark.EXCLUDED),
    ("Not reviewed", NOT_REVIEWED),
)
READY_TO_SEARCH = "Draw a sketch to search."


class CandidateGrid(QWidget):
    compareRequested = Signal(int)  # row
    importRequested = Signal()  # from the empty gallery's button

    def __init__(self, candidates: CandidatesModel, top_k: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.candidates = candidates
        self._nothing_to_search: str | None = None  # why the gallery can find nothing (from its stats)
        self.view = QListView()
        self.view.setViewMode(QListView.IconMode)
        self.view.setModel(candidates)
        self.view.setIconSize(THUMB_SIZE)
        # room for the three lines under each thumbnail: rank and score, file name and id, caption
        self.view.setGridSize(QSize(THUMB_SIZE.width() + 60, THUMB_SIZE.height() + 64))
        self.view.setResizeMode(QListView.Adjust)
        self.view.setMovement(QListView.Static)
        self.view.setUniformItemSizes(True)
        self.view.setWordWrap(True)
        self.view.setSelectionMode(QListView.SingleSelection)
        self.view.setAccessibleName("Candidates")
        self.view.setToolTip("Double-click (or Enter) to compare a candidate with the sketch")
        self.view.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.view.doubleClicked.connect(lambda index: self.compareRequested.emit(index.row()))
        self.top_k = QSpinBox()
        self.top_k.setRange(1, MAX_TOP_K)
        self.top_k.setValue(top_k)
        self.top_k.setAccessibleName("Top K")
        self.search_state = QLabel(READY_TO_SEARCH)
        self.mark_filter = QComboBox()
        for text, _mark in MARK_FILTERS:
            self.mark_filter.addItem(text)
        self.mark_filter.setAccessibleName("Show candidates")
        self.mark_filter.setToolTip("Show all candidates, or only those with one review mark")
        self.mark_filter.currentIndexChanged.connect(
            lambda i: candidates.set_mark_filter(MARK_FILTERS[i][1] if i >= 0 else None)
        )
        self.weak_warning = QLabel()
        self.weak_warning.setWordWrap(True)
        self.weak_warning.setStyleSheet("color: #a04000;")
        self.weak_warning.hide()
        self.query_warning = QLabel()  # what the search recorded on its query: a photo, a gallery photo
        self.query_warning.setWordWrap(True)
        self.query_warning.setObjectName("query-warning")
        self.query_warning.setStyleSheet("#query-warning { color: #a04000; }")  # not its tooltip
        self.query_warning.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.query_warning.hide()
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Candidates</b>"))
        header.addWidget(self.mark_filter)
        header.addStretch(1)
        header.addWidget(self.search_state)
        header.addSpacing(12)
        header.addWidget(QLabel("Top K"))
        header.addWidget(self.top_k)
        self.empty_gallery = self._build_empty_gallery_guide()
        self.results_stack = QStackedWidget()
        self.results_stack.addWidget(self.view)
        self.results_stack.addWidget(self.empty_gallery)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(self.weak_warning)
        layout.addWidget(self.query_warning)
        layout.addWidget(self.results_stack, 1)

    def _build_empty_gallery_guide(self) -> QWidget:
        """What a first-time user sees instead of a blank grid: what to do, and the button to do it."""
        guide = QWidget()
        text = QLabel(
            "<h3>The gallery is empty</h3>"
            "<p>Import a folder of photos first: SketchSearch then ranks them against your sketch.</p>"
            "<p>Photos stay where they are; the gallery keeps a thumbnail and an index of each.</p>"
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignCenter)
        self.empty_import_button = QPushButton("Import a folder of photos…")
        self.empty_import_button.setAccessibleName("Import a folder of photos")
        self.empty_import_button.clicked.connect(self.importRequested)
        layout = QVBoxLayout(guide)
        layout.addStretch(1)
        layout.addWidget(text)
        layout.addWidget(self.empty_import_button, 0, Qt.AlignHCenter)
        layout.addStretch(2)
        return guide

    def add_candidate_actions(self, actions: list[QAction]) -> None:
        """Actions on the selected candidate: in the grid's context menu, their keys only while it has focus."""
        for action in actions:
            action.setShortcutContext(Qt.WidgetShortcut)
            self.view.addAction(action)

    def current_row(self) -> int | None:
        index = self.view.currentIndex()
        return index.row() if index.isValid() else None

    def gallery_is_empty(self) -> bool:
        return self.results_stack.currentWidget() is self.empty_gallery

    def show_gallery(self, stats, sketch_drawn: bool) -> None:
        """The gallery was read: the grid, or the empty gallery's guide, and why nothing can be found."""
        self._nothing_to_search = stats.nothing_to_search()
        self.say_if_nothing_to_search(sketch_drawn)
        self.results_stack.setCurrentWidget(self.empty_gallery if stats.photos == 0 else self.view)

    # -- the search ---------------------------------------------------------------------------
    def show_results(self, candidates, seconds: float, filtered: bool, sketch_drawn: bool) -> None:
        self.candidates.set_candidates(candidates)
        self.search_state.setText(
            f"{len(candidates)} candidate(s){' (filtered)' if filtered else ''} in {seconds:.2f} s"
        )
        warning = weak_result_warning([c.score for c in candidates])
        self.weak_warning.setText(warning)
        self.weak_warning.setVisible(bool(warning))
        self.say_if_nothing_to_search(sketch_drawn)

    def show_query_warnings(self, search_id: int, warnings: list[str]) -> None:
        """The warnings recorded with the search on its query, as recorded; where each measure comes
        from in the tooltip."""
        self.query_warning.setText("\n".join(warnings))
        sources = [f"{w.split(':')[0]}: {measure_source(w)}" for w in warnings if measure_source(w)]
        self.query_warning.setToolTip("\n\n".join([f"As recorded with search {search_id}.", *sources]))
        self.query_warning.setVisible(bool(warnings))

    def say_if_nothing_to_search(self, sketch_drawn: bool) -> None:
        """An empty result of an empty (or unindexed) gallery says why, whichever arrives first."""
        if self._nothing_to_search and self.candidates.total() == 0 and sketch_drawn:
            self.search_state.setText(f"Nothing to search: {self._nothing_to_search}")

    def show_searching(self, busy: bool) -> None:
        if busy:
            self.search_state.setText("Searching…")

    def show_failed(self) -> None:
        self.search_state.setText("Search failed")

    def clear(self) -> None:
        self.candidates.clear()
        self.weak_warning.hide()
        self.query_warning.hide()
        self.search_state.setText(READY_TO_SEARCH)
