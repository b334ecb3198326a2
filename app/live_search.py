"""Live search: a finished stroke re-embeds the sketch in the background and ranks the gallery; a
filter or top-K change re-ranks the kept embedding without re-embedding. Every request has an id,
and only the newest one's result is shown."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.workers import Cancelled, TaskRunner
from core.common.clock import utcnow

# The search starts once the event loop is back, at the stroke's release: a stroke-to-result wait
# had 300 ms of waiting for more strokes in it (benchmarks/live_search.py). Strokes drawn while a
# search runs queue theirs behind it on the one search thread, where each but the newest cancels
# itself as it starts: a burst costs at most one search more.
DEBOUNCE_MS = 0


@dataclass(frozen=True)
class ShownSearch:
    """A ranking that was shown, with what produced it (for the casework record)."""

    fresh: bool  # the sketch was embedded anew (False: the kept embedding re-ranked by filters or K)
    pixels: np.ndarray  # the query image given to the model
    strokes_json: str
    where: dict[str, str]
    min_confidence: float
    top_k: int
    started_at: datetime
    candidates: list = field(default_factory=list)
    scan: tuple[str, bytes] | None = None  # the scanned sketch file under the strokes: path, bytes


class LiveSearch(QObject):
    results = Signal(int, list)  # request id, candidates
    shown = Signal(object)  # ShownSearch, after each result shown
    busy = Signal(bool)
    failed = Signal(str)
    cleared = Signal()

    def __init__(self, runner: TaskRunner, document, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.document = document
        self.workspace = None
        self.top_k = 50
        self.where: dict[str, str] = {}
        self.min_confidence = 0.0
        self.embedding: np.ndarray | None = None  # of the current sketch, once embedded
        self._embedded_query: tuple | None = None  # its pixels, strokes and scan
        self._requests: dict[int, tuple] = {}  # request -> what produced it, for the casework record
        # every scan imported (background array, path, bytes): an undo or redo back to one is that scan again
        self.scans: list[tuple[np.ndarray, str, bytes]] = []
        self.last_seconds = 0.0
        self._latest = 0
        self._shown = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.search_now)
        document.changed.connect(self.sketch_changed)

    # -- inputs ------------------------------------------------------------------------------
    def set_workspace(self, workspace) -> None:
        self.workspace = workspace
        self.embedding = None
        if workspace is not None and not self.document.is_empty():
            self.search_now()

    def sketch_changed(self) -> None:
        self.embedding = None
        self._latest += 1  # whatever is in flight is for an older sketch now
        self._timer.start()

    def set_filters(self, where: dict[str, str], min_confidence: float) -> None:
        self.where, self.min_confidence = dict(where), float(min_confidence)
        self.rerank()

    def set_top_k(self, top_k: int) -> None:
        self.top_k = int(top_k)
        self.rerank()

    def remember_scan(self, background: np.ndarray, path: str, data: bytes) -> None:
        """``background``, the document's background now, is the scan file ``path`` (its ``data``)."""
        self.scans.append((background, path, data))

    def scan_under(self) -> tuple[str, bytes] | None:
        """The scan file under the sketch as it is now (by the very array the document holds)."""
        background = self.document.background
        return next(((path, data) for array, path, data in self.scans if array is background), None)

    def pending(self) -> bool:
        return self._timer.isActive() or self._shown != self._latest

    # -- requests ----------------------------------------------------------------------------
    def _next_id(self) -> int:
        self._latest += 1
        return self._latest

    def _is_stale(self, request_id: int) -> bool:
        return request_id != self._latest

    def search_now(self) -> None:
        """Embed the sketch as it is now and rank the gallery."""
        self._timer.stop()
        if self.workspace is None:
            return  # searched when the workspace arrives
        if self.document.is_empty():
            self._shown = self._next_id()
            self.embedding = None
            self.busy.emit(False)
            self.cleared.emit()
            return
        request = self._next_id()
        pixels = self.document.to_array()  # rendering is painting; the embedding is not done here
        workspace, top_k, where, min_confidence = self.workspace, self.top_k, dict(self.where), self.min_confidence
        strokes = json.dumps({"strokes": [s.to_json() for s in self.document.strokes]})
        scan = self.scan_under()
        self._requests = {request: (True, pixels, strokes, where, min_confidence, top_k, utcnow(), scan)}

        def embed_and_rank(task):
            started = time.perf_counter()
            if self._is_stale(request):
                raise Cancelled()
            embedding = workspace.embed_sketches([pixels])
            if self._is_stale(request):
                raise Cancelled()
            candidates = workspace.search_embeddings(embedding, top_k, where, min_confidence)[0]
            return request, embedding, candidates, time.perf_counter() - started

        self.busy.emit(True)
        self.runner.submit(
            embed_and_rank,
            pool="search",
            on_result=self._finished,
            on_error=lambda message: self._failed(request, message),
            name="search",
        )

    def rerank(self) -> None:
        """Rank again with the current filters and K, re-using the sketch's embedding."""
        if self.workspace is None or self.document.is_empty():
            return
        if self.embedding is None:
            self.search_now()  # nothing embedded yet (or in flight for these filters): search afresh
            return
        request = self._next_id()
        workspace, embedding = self.workspace, self.embedding
        top_k, where, min_confidence = self.top_k, dict(self.where), self.min_confidence
        if self._embedded_query is not None:
            pixels, strokes, scan = self._embedded_query
            self._requests = {request: (False, pixels, strokes, where, min_confidence, top_k, utcnow(), scan)}

        def rank(task):
            started = time.perf_counter()
            if self._is_stale(request):
                raise Cancelled()
            candidates = workspace.search_embeddings(embedding, top_k, where, min_confidence)[0]
            return request, embedding, candidates, time.perf_counter() - started

        self.busy.emit(True)
        self.runner.submit(
            rank,
            pool="search",
            on_result=self._finished,
            on_error=lambda message: self._failed(request, message),
            name="rerank",
        )

    def _finished(self, result) -> None:
        request, embedding, candidates, seconds = result
        if self._is_stale(request):
            return  # a newer request is on its way; never show an older result over it
        self._shown = request
        self.embedding = embedding
        self.last_seconds = seconds
        self.busy.emit(False)
        self.results.emit(request, candidates)
        asked = self._requests.pop(request, None)
        if asked is not None:
            fresh, pixels, strokes, where, min_confidence, top_k, started, scan = asked
            if fresh:
                self._embedded_query = (pixels, strokes, scan)
            self.shown.emit(
                ShownSearch(fresh, pixels, strokes, where, min_confidence, top_k, started, candidates, scan)
            )

    def _failed(self, request: int, message: str) -> None:
        if self._is_stale(request):
            return
        self._shown = request
        self.busy.emit(False)
        self.failed.emit(message)
