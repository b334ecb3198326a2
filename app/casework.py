"""Casework in the window: the open case, a record of every shown search (one per burst of
strokes; a re-rank by filters or K is a revision of the same search), review marks, and the
report. Every write runs in the ``record`` pool, one at a time and in order, so that a review
always follows the record of the search it marks."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QPlainTextEdit, QWidget

from app.live_search import ShownSearch
from app.workers import TaskRunner
from core.casework.records import CaseInfo, ReviewMark

# A stroke burst: strokes drawn less than this apart make one recorded search (the live search
# itself runs after each stroke).
RECORD_DEBOUNCE_MS = 1500


class _SearchHandle:
    """The id of a recorded search, set by the worker that records it (the ``record`` pool runs
    one task at a time, in order, so later tasks always see it)."""

    def __init__(self, case_id: int | None = None):
        self.search_id: int | None = None
        self.revision = 0
        self.case_id = case_id  # the case it is recorded in: another case's ranking is a new record


class CaseRecorder(QObject):
    caseChanged = Signal(object)  # CaseInfo or None
    recorded = Signal(int, int)  # search id, revision
    marksChanged = Signal(object)  # dict: photo id -> ReviewMark, for the search shown
    reportWritten = Signal(str)
    failed = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.workspace = None
        self.case: CaseInfo | None = None
        self.marks: dict[int, ReviewMark] = {}
        self.report_top = 10  # candidates a report lists per search besides the reviewed (a preference)
        self._pending: ShownSearch | None = None
        self._pending_fresh = False
        self._handle: _SearchHandle | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECORD_DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)

    def set_workspace(self, workspace) -> None:
        self.flush()
        self.workspace = workspace
        self._handle = None
        self._set_case(None)
        self._set_marks({})

    # -- searches ----------------------------------------------------------------------------
    def shown(self, search: ShownSearch) -> None:
        """A ranking was shown: record it once the burst of strokes (or filter changes) settles."""
        if search.fresh or self._handle is None:
            self._pending_fresh = True
        elif self._pending is None:
            self._pending_fresh = False
        self._pending = search  # a newer ranking of the same burst replaces the one waiting
        self._timer.start()

    def sketch_changed(self) -> None:
        if self._timer.isActive():
            self._timer.start()  # the burst goes on

    def pending(self) -> bool:
        return self._pending is not None or self._timer.isActive()

    def flush(self) -> None:
        """Record the waiting ranking now."""
        self._timer.stop()
        shown, fresh, workspace = self._pending, self._pending_fresh, self.workspace
        self._pending = None
        if shown is None or workspace is None:
            return
        case_id = self.case.id if self.case is not None and self.case.is_open else None
        if fresh or self._handle is None or self._handle.case_id != case_id:
            fresh = True  # a closed case takes no revision; a case opened since records anew
            self._handle = _SearchHandle(case_id)
            self._set_marks({})
        handle = self._handle

        def record(task):
            search_id, revision = workspace.record_drawn_search(
                shown.pixels,
                shown.strokes_json,
                shown.scan,
                shown.candidates,
                where=shown.where,
                min_confidence=shown.min_confidence,
                top_k=shown.top_k,
                started_at=shown.started_at,
                case_id=case_id,
                revision_of=None if fresh else handle.search_id,
            )
            handle.search_id, handle.revision = search_id, revision
            return search_id, revision

        self._submit(record, lambda result: self.recorded.emit(*result), "record search")

    def current_search_id(self) -> int | None:
        return self._handle.search_id if self._handle else None

    # -- reviews -----------------------------------------------------------------------------
    def review(self, rank: int, photo_id: int, mark: ReviewMark, note: str = "") -> None:
        """Mark the candidate at ``rank`` of the ranking shown (recorded first if still waiting)."""
        self.flush()
        workspace, handle = self.workspace, self._handle
        if workspace is None or handle is None:
            self.failed.emit("Nothing to review: no search has been shown yet")
            return

        def review(task):
            if handle.search_id is None:
                raise ValueError("the search could not be recorded, so its candidates cannot be marked")
            return workspace.review(handle.search_id, rank, mark, note, photo_id)

        def done(result) -> None:
            if handle is self._handle:
                marks = dict(self.marks)
                if mark == ReviewMark.CLEAR:
                    marks.pop(photo_id, None)
                else:
                    marks[photo_id] = mark
                self._set_marks(marks)

        self._submit(review, done, "review")

    def _set_marks(self, marks: dict[int, ReviewMark]) -> None:
        self.marks = marks
        self.marksChanged.emit(dict(marks))

    # -- cases -------------------------------------------------------------------------------
    def new_case(self, number: str, title: str, operator: str, notes: str = "") -> None:
        workspace = self.workspace
        if workspace is None:
            return
        self.flush()

        def open_new(task):
            if operator and operator != workspace.operator:  # the data folder's operator from now on, CLI too
                workspace.set_operator(operator, remember=True)
            return workspace.new_case(number, title, notes)

        self._submit(open_new, self._set_case, "new case")

    def set_operator(self, operator: str, on_result=None) -> None:
        """Work as ``operator`` from now on, in the window and on the command line (the data
        folder's setting, recorded in the audit log)."""
        workspace = self.workspace
        if workspace is None or not operator or operator == workspace.operator:
            return
        self.flush()
        self._submit(
            lambda task: workspace.set_operator(operator, remember=True), on_result or (lambda _n: None), "operator"
        )

    def open_case(self, number: str) -> None:
        """Work in a case (opened again if it was closed)."""
        workspace = self.workspace
        if workspace is None:
            return
        self.flush()
        self._submit(lambda task: workspace.open_case(number), self._set_case, "open case")

    def close_case(self) -> None:
        workspace, case = self.workspace, self.case
        if workspace is None or case is None:
            return
        self.flush()
        self._submit(
            lambda task: workspace.close_case(case.number),
            lambda _closed: self._set_case(None),
            "close case",
        )

    def list_cases(self, on_result) -> None:
        workspace = self.workspace
        if workspace is not None:
            self._submit(lambda task: workspace.cases(), on_result, "list cases")

    def export_report(self, path: str) -> None:
        workspace, case = self.workspace, self.case
        if workspace is None or case is None:
            self.failed.emit("Open a case to export its report")
            return
        self.flush()
        top = self.report_top
        self._submit(
            lambda task: str(workspace.export_case_report(case.number, path, top)),
            self.reportWritten.emit,
            "export report",
        )

    def _set_case(self, case: CaseInfo | None) -> None:
        self.case = case
        self.caseChanged.emit(case)

    def _submit(self, function, on_result, name: str) -> None:
        self.runner.submit(function, pool="record", on_result=on_result, on_error=self.failed.emit, name=name)


class NewCaseDialog(QDialog):
    def __init__(self, operator: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New case")
        self.number = QLineEdit()
        self.title = QLineEdit()
        self.operator = QLineEdit(operator)
        self.notes = QPlainTextEdit()
        self.notes.setFixedHeight(80)
        form = QFormLayout(self)
        form.addRow("Case &number", self.number)
        form.addRow("&Title", self.title)
        form.addRow("&Operator", self.operator)
        form.addRow("N&otes", self.notes)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        ok = buttons.button(QDialogButtonBox.Ok)
        ok.setEnabled(False)
        self.number.textChanged.connect(lambda text: ok.setEnabled(bool(text.strip())))
