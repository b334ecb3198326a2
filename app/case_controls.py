"""The Case menu's commands: start or open a case, export its report, and mark the selected
candidate as a possible lead or excluded (with an optional note). The recorder (app/casework.py)
writes all of it; this asks the user and says what was recorded."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

from app.candidate_grid import CandidateGrid
from app.candidates_model import CandidatesModel
from app.casework import CaseRecorder, NewCaseDialog
from app.controller import WindowController
from app.settings import REPORTS, last_folder, remember_folder
from core.casework.records import CaseInfo, ReviewMark

REPORT_FILTER = "PDF report (*.pdf)"


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
        recorder.recorded.connect(self._say_recorded)
        recorder.reportWritten.connect(lambda path: self.message.emit(f"Report written to {path}", 10000))

    # -- cases --------------------------------------------------------------------------------
    def choose_new_case(self) -> None:
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

    def choose_case_to_open(self) -> None:
        def choose(cases) -> None:
            if not cases:
                self.alert.emit("There is no case yet: Case → New case… starts one.", "Open case")
                return
            labels = [f"{c.number} — {c.title}" + ("" if c.is_open else " (closed)") for c in cases]
            label, ok = QInputDialog.getItem(self.dialog_parent, "Open case", "Case", labels, len(labels) - 1, False)
            if ok:
                self.recorder.open_case(cases[labels.index(label)].number)

        self.recorder.list_cases(choose)

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

    def _say_recorded(self, search_id: int, revision: int) -> None:
        where = f"case {self.recorder.case.number}" if self.recorder.case else "no case"
        what = f"search {search_id}" + (f" (revision {revision})" if revision > 1 else "")
        self.message.emit(f"Recorded {what} under {where}", 5000)

    # -- review marks -------------------------------------------------------------------------
    def review_row(self, row: int, mark: ReviewMark, note: str = "") -> bool:
        candidate = self.candidates.candidate(row)
        if candidate is None:
            return False
        self.recorder.review(candidate.rank, candidate.photo_id, mark, note)
        return True

    def review_selected(self, mark: ReviewMark, note: str = "") -> bool:
        row = self.grid.current_row()
        return row is not None and self.review_row(row, mark, note)

    def review_with_note(self) -> None:
        row = self.grid.current_row()
        if row is None:
            return
        marks = [ReviewMark.POSSIBLE, ReviewMark.EXCLUDED]
        label, ok = QInputDialog.getItem(self.dialog_parent, "Review", "Mark", [m.label for m in marks], 0, False)
        if not ok:
            return
        note, ok = QInputDialog.getText(self.dialog_parent, "Review", "Note")
        if ok:
            self.review_row(row, marks[[m.label for m in marks].index(label)], note)
