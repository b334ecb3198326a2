"""The Case menu's commands: start or open a case, export its report or the audit log, and mark the selected
candidate as a possible lead or excluded (with an optional note). The recorder (app/casework.py)
writes all of it; this asks the user and says what was recorded. A mark made while no case is
open asks first where it should go, so that no case's report silently leaves it out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from app.candidate_grid import CandidateGrid
from app.candidates_model import CandidatesModel
from app.casework import CaseRecorder, NewCaseDialog
from app.controller import WindowController
from app.settings import REPORTS, last_folder, remember_folder
from core.casework.records import AuditCheck, CaseInfo, ReviewMark

REPORT_FILTER = "PDF report (*.pdf)"
AUDIT_FILTER = "Audit log (*.json)"
MARK_WITHOUT_CASE = "Mark without a case"


def window_title(case: CaseInfo | None) -> str:
    """The window's title names the case searches are recorded under."""
    if case is None:
        return "SketchSearch — no case"
    return f"SketchSearch — case {case.number}" + (f": {case.title}" if case.title else "")


class CaseControls(WindowController):
    def __init__(
        self,
        recorder: CaseRecorder,
        candidates: CandidatesModel,
        grid: CandidateGrid,
        dialog_parent: QWidget,
        settings: QSettings,
    ):
        super().__init__(dialog_parent)
        self.settings = settings
        self.recorder = recorder
        self.candidates = candidates
        self.grid = grid
        self._without_case = False  # "Mark without a case" was chosen: not asked again until the case changes
        recorder.recorded.connect(self._say_recorded)
        recorder.takenOver.connect(self._say_taken_over)
        recorder.caseChanged.connect(self._case_changed)
        recorder.reportWritten.connect(lambda path: self.message.emit(f"Report written to {path}", 10000))
        recorder.auditExported.connect(self._say_audit_exported)

    # -- cases --------------------------------------------------------------------------------
    def choose_new_case(self, then: Callable[[], None] | None = None) -> None:
        """Ask for the new case's number and title; ``then`` runs once it is on its way (a mark
        made then waits for it)."""
        if self.workspace is None:
            return
        dialog = NewCaseDialog(self.workspace.desk.operator, self.dialog_parent)
        if dialog.exec() == NewCaseDialog.Accepted:
            self.recorder.new_case(
                dialog.number.text().strip(),
                dialog.title.text().strip(),
                dialog.operator.text().strip(),
                dialog.notes.toPlainText().strip(),
            )
            if then is not None:
                then()

    def choose_case_to_open(self, then: Callable[[], None] | None = None) -> None:
        def choose(cases) -> None:
            if not cases:
                self.alert.emit("There is no case yet: Case → New case… starts one.", "Open case")
                return
            labels = [f"{c.number} — {c.title}" + ("" if c.is_open else " (closed)") for c in cases]
            label, ok = QInputDialog.getItem(self.dialog_parent, "Open case", "Case", labels, len(labels) - 1, False)
            if ok:
                self.recorder.open_case(cases[labels.index(label)].number)
                if then is not None:
                    then()

        self.recorder.list_cases(choose)

    def restore_case(self, number: str | None) -> None:
        """Work again in the case that was open when the window last closed on this gallery."""
        if number:
            self.recorder.resume_case(number, lambda why: self.message.emit(why, 0))

    def _case_changed(self, _case: CaseInfo | None) -> None:
        self._without_case = False  # asked again once the case changes

    def choose_report_path(self) -> None:
        case = self.recorder.case
        if case is None:
            return
        suggested = str(Path(last_folder(self.settings, REPORTS)) / f"case-{case.number}.pdf")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Export case report", suggested, REPORT_FILTER)
        if path:
            remember_folder(self.settings, REPORTS, path)
            self.message.emit(f"Writing the report of case {case.number}…", 0)
            self.recorder.export_report(path)

    def choose_audit_log_path(self) -> None:
        if self.workspace is None:
            return
        suggested = str(Path(last_folder(self.settings, REPORTS)) / "audit-log.json")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Export audit log", suggested, AUDIT_FILTER)
        if path:
            remember_folder(self.settings, REPORTS, path)
            self.message.emit("Writing the audit log…", 0)
            self.recorder.export_audit_log(path)

    def _say_audit_exported(self, path: str, check: AuditCheck) -> None:
        """Written either way (the file itself says whether the log verified); a log that does not
        verify is said aloud, not only in the status bar."""
        head = f"{check.entries} entries, head {check.entries}:{check.head_sha256[:12]}"
        if check.ok:
            self.message.emit(f"Audit log written to {path}: {head}, verified", 15000)
        else:
            self.alert.emit(
                f"The audit log was written to {path}, but it does not verify: {check.problem}\n\n"
                'The file lists every problem found under "verified".',
                "Audit log damaged",
            )

    def _say_recorded(self, search_id: int, revision: int) -> None:
        where = f"case {self.recorder.case.number}" if self.recorder.case else "no case"
        what = f"search {search_id}" + (f" (revision {revision})" if revision > 1 else "")
        self.message.emit(f"Recorded {what} under {where}", 5000)

    def _say_taken_over(self, source: int, taken: int) -> None:
        where = f"case {self.recorder.case.number}" if self.recorder.case else "no case"
        self.message.emit(f"Search on screen recorded in {where} as search {taken} (from search {source})", 15000)

    # -- review marks -------------------------------------------------------------------------
    def review_row(self, row: int, mark: ReviewMark, note: str = "") -> bool:
        """Mark the candidate in ``row``; with no case open, ask first where the mark goes. False
        when there is no such candidate or the user cancelled."""
        candidate = self.candidates.candidate(row)
        if candidate is None:
            return False
        return self._with_case(lambda: self.recorder.review(candidate.rank, candidate.photo_id, mark, note))

    def review_selected(self, mark: ReviewMark, note: str = "") -> bool:
        row = self.grid.current_row()
        return row is not None and self.review_row(row, mark, note)

    def review_with_note(self) -> None:
        row = self.grid.current_row()
        if row is None or self.candidates.candidate(row) is None:
            return
        candidate = self.candidates.candidate(row)
        self._with_case(lambda: self._review_with_note(candidate))

    def _review_with_note(self, candidate) -> None:
        marks = [ReviewMark.POSSIBLE, ReviewMark.EXCLUDED]
        label, ok = QInputDialog.getItem(self.dialog_parent, "Review", "Mark", [m.label for m in marks], 0, False)
        if not ok:
            return
        note, ok = QInputDialog.getText(self.dialog_parent, "Review", "Note")
        if ok:
            mark = marks[[m.label for m in marks].index(label)]
            self.recorder.review(candidate.rank, candidate.photo_id, mark, note)

    def _with_case(self, mark: Callable[[], None]) -> bool:
        """Run ``mark`` where the user wants it: in the open case, or, with none open, after asking
        (New case…, Open case…, Mark without a case, Cancel). False if cancelled."""
        if self.recorder.case is not None or self.recorder.switching() or self._without_case:
            mark()
            return True
        box = QMessageBox(
            QMessageBox.Question,
            "Mark candidate",
            "No case is open.",
            QMessageBox.NoButton,
            self.dialog_parent,
        )
        box.setInformativeText(
            "A mark made now is recorded under no case, and no case's report will show it. "
            "Start or open the case first, and the search on screen is recorded in it with the mark."
        )
        new = box.addButton("New case…", QMessageBox.AcceptRole)
        open_ = box.addButton("Open case…", QMessageBox.AcceptRole)
        without = box.addButton(MARK_WITHOUT_CASE, QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(new)
        box.exec()
        chosen = box.clickedButton()
        box.deleteLater()
        if chosen is new:
            self.choose_new_case(then=mark)
        elif chosen is open_:
            self.choose_case_to_open(then=mark)
        elif chosen is without:
            self._without_case = True
            mark()
        else:
            return False
        return True
