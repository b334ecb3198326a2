"""Casework in the window: the open case, a record of every shown search (one per burst of
strokes; a re-rank by filters or K is a revision of the same search), review marks, and the
report. Every write runs in the ``record`` pool, one at a time and in order, so that a review
always follows the record of the search it marks.

Marks go where the window says: opening or starting a case takes over the search on screen into
it (core.casework.takeover), and a mark on a ranking recorded elsewhere (a case closed since) takes
it over first. The case's newest mark on each photo shows again, as an earlier mark, on that
photo's card in a later search of the case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QPlainTextEdit, QWidget

from app.live_search import ShownSearch
from app.workers import TaskRunner
from core.casework.records import CaseInfo, CaseMark, ReviewMark

# A stroke burst: strokes drawn less than this apart make one recorded search (the live search
# itself runs after each stroke).
RECORD_DEBOUNCE_MS = 1500


class _SearchHandle:
    """The id of a recorded search, set by the worker that records it (the ``record`` pool runs
    one task at a time, in order, so later tasks always see it)."""

    def __init__(self, case_id: int | None = None, search_id: int | None = None, revision: int = 0):
        self.search_id = search_id
        self.revision = revision
        self.case_id = case_id  # the case it is recorded in: another case's ranking is a new record


class CaseRecorder(QObject):
    caseChanged = Signal(object)  # CaseInfo or None
    caseChosen = Signal(object)  # the same, when a person chose it (to be opened again at the next start)
    recorded = Signal(int, int)  # search id, revision
    queryWarnings = Signal(int, list)  # search id, the warnings recorded on its query (core.casework.query_check)
    takenOver = Signal(int, int)  # the search on screen, and its copy in the case now open (or under no case)
    marksChanged = Signal(object, object)  # photo id -> ReviewMark of the search shown; photo id -> earlier CaseMark
    reportWritten = Signal(str)
    auditExported = Signal(str, object)  # the file written, the AuditCheck of the log as it was written
    failed = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self.workspace = None
        self.case: CaseInfo | None = None
        self.marks: dict[int, ReviewMark] = {}
        self.case_marks: dict[int, CaseMark] = {}  # the open case's newest mark on each photo
        self.report_top = 10  # candidates a report lists per search besides the reviewed (a preference)
        self._pending: ShownSearch | None = None
        self._pending_fresh = False
        self._handle: _SearchHandle | None = None
        self._switching = False  # a case is being opened: marks wait for it
        self._waiting_marks: list[tuple] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECORD_DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)

    def set_workspace(self, workspace) -> None:
        self.flush()
        self.workspace = workspace
        self._handle = None
        self._switching = False
        self._waiting_marks = []
        self.case_marks = {}
        self._set_case(None)
        self._set_marks({})

    def switching(self) -> bool:
        """A case is being opened (or started): marks made now go to it."""
        return self._switching

    # -- searches ----------------------------------------------------------------------------
    def shown(self, search: ShownSearch) -> None:
        """A ranking was shown: record it once the burst of strokes (or filter changes) settles."""
        if search.fresh or self._handle is None:
            self._pending_fresh = True
        elif self._pending is None:
            self._pending_fresh = False
        self._pending = search  # a newer ranking of the same burst replaces the one waiting
        self._timer.start()
        if search.fresh:
            self._set_marks({})  # a new sketch is a new search: any mark on its candidates is an earlier one

    def sketch_changed(self) -> None:
        if self._timer.isActive():
            self._timer.start()  # the burst goes on

    def screen_cleared(self) -> None:
        """The sketch was cleared: no ranking is on screen, so none is taken over into a case."""
        self.flush()
        self._handle = None
        self._set_marks({})

    def pending(self) -> bool:
        return self._pending is not None or self._timer.isActive()

    def flush(self) -> None:
        """Record the waiting ranking now."""
        self._timer.stop()
        shown, fresh, workspace = self._pending, self._pending_fresh, self.workspace
        self._pending = None
        if shown is None or workspace is None:
            return
        case_id = self._open_case_id()
        if fresh or self._handle is None or self._handle.case_id != case_id:
            fresh = True  # a closed case takes no revision; a case opened since records anew
            self._handle = _SearchHandle(case_id)
            self._set_marks({})
        handle = self._handle

        def record(task):
            search_id, revision = workspace.desk.record_drawn_search(
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
            warnings = workspace.casework.search(search_id).latest.query_warnings
            return search_id, revision, warnings, self._read_case_marks(workspace, case_id)

        def done(result) -> None:
            search_id, revision, warnings, case_marks = result
            self._case_marks_read(case_marks, case_id)
            self.recorded.emit(search_id, revision)
            self.queryWarnings.emit(search_id, warnings)

        self._submit(record, done, "record search")

    def current_search_id(self) -> int | None:
        return self._handle.search_id if self._handle else None

    def _open_case_id(self) -> int | None:
        return self.case.id if self.case is not None and self.case.is_open else None

    # -- reviews -----------------------------------------------------------------------------
    def review(self, rank: int, photo_id: int, mark: ReviewMark, note: str = "") -> None:
        """Mark the candidate at ``rank`` of the ranking shown (recorded first if still waiting). A
        ranking recorded in another case than the one open now (or under no case) is taken over
        first, so that the mark goes where the window says."""
        if self._switching:
            self._waiting_marks.append((rank, photo_id, mark, note))  # made once the case is open
            return
        self.flush()
        workspace = self.workspace
        if workspace is None or self._handle is None:
            self.failed.emit("Nothing to review: no search has been shown yet")
            return
        case_id = self._open_case_id()
        if self._handle.case_id != case_id:
            self._take_over(case_id, f"marked in case {self.case.number}" if self.case else "marked without a case")
        handle = self._handle

        def review(task):
            if handle.search_id is None:
                raise ValueError("the search could not be recorded, so its candidates cannot be marked")
            workspace.desk.review(handle.search_id, rank, mark, note, photo_id)
            return self._read_case_marks(workspace, case_id)

        def done(case_marks) -> None:
            if handle is self._handle:
                marks = dict(self.marks)
                if mark == ReviewMark.CLEAR:
                    marks.pop(photo_id, None)
                else:
                    marks[photo_id] = mark
                self.marks = marks
            self._case_marks_read(case_marks, case_id)

        self._submit(review, done, "review")

    def _take_over(self, case_id: int | None, occasion: str) -> None:
        """Record the ranking on screen again in ``case_id`` (None: under no case); its marks
        stay with the record they were made in."""
        workspace, source = self.workspace, self._handle
        taken = _SearchHandle(case_id)
        self._handle = taken
        self._set_marks({})

        def take_over(task):
            if source.search_id is None:
                raise ValueError("the search on screen could not be recorded, so it cannot be taken over")
            taken.search_id, taken.revision = workspace.desk.take_over_search(source.search_id, case_id, occasion)
            return source.search_id, taken.search_id

        self._submit(take_over, lambda result: self.takenOver.emit(*result), "take over search")

    @staticmethod
    def _read_case_marks(workspace, case_id: int | None) -> dict[int, CaseMark] | None:
        return workspace.desk.case_marks(case_id) if case_id is not None else None

    def _case_marks_read(self, case_marks: dict[int, CaseMark] | None, case_id: int | None) -> None:
        if case_id is not None and case_id == self._open_case_id():
            self.case_marks = case_marks or {}
        self._set_marks(self.marks)

    def _set_marks(self, marks: dict[int, ReviewMark]) -> None:
        """Show the marks of the search on screen, and the case's marks made in its other searches."""
        self.marks = marks
        shown = None if self._pending is not None and self._pending_fresh else self.current_search_id()
        earlier = {
            photo_id: mark
            for photo_id, mark in self.case_marks.items()
            if photo_id not in marks and (shown is None or mark.search_id != shown)
        }
        self.marksChanged.emit(dict(marks), earlier)

    # -- cases -------------------------------------------------------------------------------
    def new_case(self, number: str, title: str, operator: str, notes: str = "") -> None:
        workspace = self.workspace
        if workspace is None:
            return

        def open_new() -> CaseInfo:
            if operator and operator != workspace.desk.operator:  # the data folder's operator from now on, CLI too
                workspace.desk.set_operator(operator, remember=True)
            return workspace.desk.new_case(number, title, notes)

        self._switch_case(open_new, "started", "new case")

    def set_operator(self, operator: str, on_result=None) -> None:
        """Work as ``operator`` from now on, in the window and on the command line (the data
        folder's setting, recorded in the audit log)."""
        workspace = self.workspace
        if workspace is None or not operator or operator == workspace.desk.operator:
            return
        self.flush()
        self._submit(
            lambda task: workspace.desk.set_operator(operator, remember=True),
            on_result or (lambda _n: None),
            "operator",
        )

    def open_case(self, number: str) -> None:
        """Work in a case (opened again if it was closed)."""
        workspace = self.workspace
        if workspace is not None:
            self._switch_case(lambda: workspace.desk.open_case(number), "opened", "open case")

    def resume_case(self, number: str, refused: Callable[[str], None]) -> None:
        """Work again in the case open at the last start, unless it was closed since (or is gone):
        then ``refused`` is told why, and searches go under no case."""
        workspace = self.workspace
        if workspace is None:
            return

        def find() -> CaseInfo | None:
            return next((c for c in workspace.desk.cases() if c.number == number), None)

        def unless_closed(case: CaseInfo | None) -> bool:
            if case is not None and case.is_open:
                return True
            if case is None:
                refused(f"Case {number}, open last session, is not in this gallery: no case is open")
            else:
                closed = f"{case.closed_at:%Y-%m-%d %H:%M} UTC"
                refused(f"Case {number} was closed since the last session ({closed}): no case is open")
            self.caseChosen.emit(None)
            return False

        self._switch_case(find, "resumed at the start", "resume case", accept=unless_closed)

    def _switch_case(
        self,
        get_case: Callable[[], CaseInfo | None],
        verb: str,
        name: str,
        accept: Callable[[CaseInfo | None], bool] | None = None,
    ) -> None:
        """Open the case ``get_case`` gives (in the worker) and take over the ranking on screen
        into it; marks made meanwhile wait for it."""
        workspace = self.workspace
        self.flush()
        source = self._handle  # the ranking on screen, if any
        self._switching = True

        def switch(task):
            case = get_case()
            if case is None or not case.is_open:
                return case, None, {}
            taken = None
            if source is not None and source.case_id != case.id and source.search_id is not None:
                occasion = f"on screen when case {case.number} was {verb}"
                taken = workspace.desk.take_over_search(source.search_id, case.id, occasion)
            return case, taken, workspace.desk.case_marks(case.id)

        def done(result) -> None:
            case, taken, case_marks = result
            if workspace is not self.workspace:
                return
            self._switching = False
            if accept is not None and not accept(case):
                self._drop_waiting_marks("no case is open")
                return
            if taken is not None and self._handle is source:  # nothing newer was shown since
                self._handle = _SearchHandle(case.id, *taken)
                self.marks = {}
            self.case_marks = case_marks
            self._set_case(case, chosen=True)
            self._set_marks(self.marks)
            if taken is not None:
                self.takenOver.emit(source.search_id, taken[0])
            self._make_waiting_marks()

        def failed(message: str) -> None:
            self._switching = False
            self.failed.emit(message)
            self._drop_waiting_marks(message)

        self.runner.submit(switch, pool="record", on_result=done, on_error=failed, name=name)

    def _drop_waiting_marks(self, why: str) -> None:
        waiting, self._waiting_marks = self._waiting_marks, []
        if waiting:
            self.failed.emit(f"{len(waiting)} mark(s) not recorded: {why}")

    def _make_waiting_marks(self) -> None:
        waiting, self._waiting_marks = self._waiting_marks, []
        for rank, photo_id, mark, note in waiting:
            self.review(rank, photo_id, mark, note)

    def close_case(self) -> None:
        workspace, case = self.workspace, self.case
        if workspace is None or case is None:
            return
        self.flush()

        def closed(_case) -> None:
            self.case_marks = {}
            self._set_case(None, chosen=True)
            self._set_marks(self.marks)

        self._submit(lambda task: workspace.desk.close_case(case.number), closed, "close case")

    def list_cases(self, on_result) -> None:
        workspace = self.workspace
        if workspace is not None:
            self._submit(lambda task: workspace.desk.cases(), on_result, "list cases")

    def export_report(self, path: str) -> None:
        workspace, case = self.workspace, self.case
        if workspace is None or case is None:
            self.failed.emit("Open a case to export its report")
            return
        self.flush()
        top = self.report_top
        self._submit(
            lambda task: str(workspace.desk.export_case_report(case.number, path, top)),
            self.reportWritten.emit,
            "export report",
        )

    def export_audit_log(self, path: str) -> None:
        """The whole audit log as one JSON document, verified as it is written (what
        ``sketchsearch audit export`` writes); needs no case."""
        workspace = self.workspace
        if workspace is None:
            return
        self.flush()
        self._submit(
            lambda task: workspace.desk.export_audit_log(Path(path)),
            lambda written: self.auditExported.emit(str(written[0]), written[1]),
            "export audit log",
        )

    def _set_case(self, case: CaseInfo | None, chosen: bool = False) -> None:
        self.case = case
        self.caseChanged.emit(case)
        if chosen:
            self.caseChosen.emit(case)

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
