"""The case report as PDF (fpdf2: no Qt, so the command line writes the same report as the window).

It holds the case header, every search of the case (query picture, filters, model, gallery
state, time, operator), its top candidates with thumbnails, scores and review marks, the audit
chain's head hash and the statement that candidates are investigative leads."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from core.casework.records import AuditCheck, CaseInfo, RecordedSearch, Review
from core.casework.report_video import draw_video_provenance
from core.casework.weak import weak_result_warning
from core.common.private_files import write_private_file
from core.common.types import VideoSource

DISCLAIMER = (
    "Candidates are investigative leads, not identifications. Each ranking is the model's "
    "similarity between the sketch and the gallery photos; a person must review every candidate, "
    "and no candidate may be treated as the suspect on the strength of this report."
)
SCORE_NOTE = (
    "Scores: cosine similarity of the sketch's and the photo's embeddings computed by the named "
    "model (from -1 to 1); they rank photos, they are not probabilities. Marks: decisions recorded "
    "by the named operator."
)
CANDIDATES_SHOWN = 10  # per search, plus every reviewed candidate below them
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "C:/Windows/Fonts/arial.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
)


class _ReportPDF(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.unicode = False
        for candidate in _FONT_PATHS:
            if Path(candidate).is_file():  # a Unicode font where one is installed: notes keep their accents
                self.add_font("report", "", candidate)
                self.unicode = True
                break
        self.set_auto_page_break(True, margin=18)
        self.alias_nb_pages()

    def use_font(self, size: float, bold: bool = False) -> None:
        if self.unicode:
            self.set_font("report", "", size)
        else:
            self.set_font("helvetica", "B" if bold else "", size)

    def clean(self, value) -> str:
        text = str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-13)
        self.use_font(7.5)
        self.set_text_color(90)
        self.cell(0, 5, self.clean(f"{self.footer_text}  |  page {self.page_no()} of {{nb}}"), align="C")
        self.set_text_color(0)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _wrap(text: str, size: float, width_mm: float) -> list[str]:
    """Lines that fit ``width_mm`` at ``size`` points, by a generous average glyph width: fpdf2's
    own line breaking measures every glyph and is most of the time of a large report."""
    chars = max(20, int(width_mm / (size * 0.3528 * 0.62)))  # 0.62 em: about the widest digits
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, chars, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _text(pdf: _ReportPDF, text: str, size: float = 9, bold: bool = False, height: float = 4.6, indent: float = 0):
    pdf.use_font(size, bold)
    for line in _wrap(pdf.clean(text), size, pdf.w - pdf.l_margin - pdf.r_margin - indent):
        pdf.set_x(pdf.l_margin + indent)
        pdf.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")


_line = _text


def _search_block(pdf: _ReportPDF, search: RecordedSearch, marks: dict[int, Review]) -> None:
    latest = search.latest
    if pdf.get_y() > pdf.h - 90:
        pdf.add_page()
    pdf.ln(3)
    title = f"Search {search.id}"
    if len(search.revisions) > 1:
        title += f", revision {latest.revision} of {len(search.revisions)} (earlier rankings are in the audit log)"
    _line(pdf, title, 11, bold=True, height=6)
    top = pdf.get_y()
    pdf.image(io.BytesIO(search.query_png), x=pdf.l_margin, y=top, h=38, keep_aspect_ratio=True, w=30)
    filters = ", ".join(f"{k}={v}" for k, v in sorted(latest.filters.items())) or "none"
    details = [
        f"Searched: {_when(latest.started_at)} to {_when(latest.finished_at)} by {search.operator}"
        + (f" (this revision by {latest.operator})" if latest.operator != search.operator else ""),
        f"Query: {search.query_name}\nsha256 {search.query_sha256}",
        f"Model: {latest.model_name}, embedding key {latest.embedding_key[:16]}",
        f"Gallery: {latest.gallery.photos} photo(s), last import {latest.gallery.last_import or 'none'}",
        f"Filters: {filters}; predicted values counted from confidence {latest.min_confidence:.2f}; top {latest.top_k}",
        f"Recorded by SketchSearch {search.app_version}; audit entry {latest.audit_seq}",
    ]
    if search.origin:  # a ranking taken over from another record (core.casework.takeover)
        details.insert(1, f"Origin: {search.origin}")
    pdf.set_y(top)
    for text in details:
        _text(pdf, text, 8.5, height=4.4, indent=34)
    if latest.query_warnings:  # beside the query picture: what was found wrong with it when searched
        pdf.set_text_color(160, 60, 0)
        for text in latest.query_warnings:
            _text(pdf, f"Query warning: {text}", 8.5, height=4.4, indent=34)
        pdf.set_text_color(0)
    pdf.set_y(max(pdf.get_y(), top + 40))
    warning = weak_result_warning([c.score for c in latest.candidates])
    if warning:
        pdf.set_text_color(160, 60, 0)
        _line(pdf, warning, 8.5)
        pdf.set_text_color(0)
    shown = [c for c in latest.candidates if c.rank <= CANDIDATES_SHOWN or c.photo_id in marks]
    if not shown:
        _line(pdf, "No candidate matched.", 9)
        return
    pdf.ln(1)
    pdf.use_font(8, bold=True)
    for text, width in (("rank", 12), ("photo", 22), ("photo id / sha256", 62), ("score", 18), ("review", 0)):
        pdf.cell(width, 5, text, border="B")
    pdf.ln(5)
    review_x = pdf.l_margin + 12 + 22 + 62 + 18
    for c in shown:
        review = marks.get(c.photo_id)
        lines = ["not reviewed"]
        if review:
            text = f"{review.mark.label} ({review.operator}, {_when(review.at)})"
            lines = _wrap(
                pdf.clean(text + (f": {review.note}" if review.note else "")), 8.5, pdf.w - pdf.r_margin - review_x
            )
        row = max(20.0, 4.2 * len(lines) + 1)  # a long note is never cut
        if pdf.get_y() + row > pdf.h - 20:
            pdf.add_page()
        y = pdf.get_y()
        pdf.use_font(8.5)
        pdf.cell(12, 20, str(c.rank))
        if c.thumbnail:
            pdf.image(io.BytesIO(c.thumbnail), x=pdf.get_x() + 1, y=y + 1, h=18, w=20, keep_aspect_ratio=True)
        x = pdf.l_margin + 12 + 22
        pdf.use_font(7.5)
        sha = c.photo_sha256
        for i, text in enumerate((f"#{c.photo_id}", sha[:22], sha[22:44], sha[44:])):
            pdf.set_xy(x, y + i * 3.8)  # fixed lines: cell, not multi_cell (line breaking is the slow part)
            pdf.cell(62, 3.8, text)
        row += draw_video_provenance(pdf, pdf.video_sources.get(sha), x, y + row)  # cut from video: where it was seen
        pdf.use_font(8.5)
        pdf.set_xy(x + 62, y)
        pdf.cell(18, 20, f"{c.score:+.4f}")
        for i, line in enumerate(lines):
            pdf.set_xy(review_x, y + i * 4.2)
            pdf.cell(0, 4.2, line)
        pdf.set_y(y + row)


def write_case_report(
    path: Path,
    case: CaseInfo,
    searches: list[RecordedSearch],
    marks: dict[int, dict[int, Review]],
    audit: AuditCheck,
    *,
    generated_by: str,
    app_version: str,
    sealed: bool = False,
    video_sources: Mapping[str, VideoSource] | None = None,
) -> Path:
    """Write the report to ``path``; ``marks``: search id -> photo id -> current decision;
    ``video_sources``: photo sha256 -> where a candidate cut from video was seen."""
    pdf = _ReportPDF(f"SketchSearch case {case.number}  |  audit head {audit.entries}:{audit.head_sha256[:16]}")
    pdf.video_sources = dict(video_sources or {})
    pdf.set_title(f"Case {case.number}")
    pdf.set_creator(f"SketchSearch {app_version}")
    pdf.add_page()
    _line(pdf, f"Case {case.number}: {case.title}", 16, bold=True, height=8)
    status = f"closed {_when(case.closed_at)}" if case.closed_at else "open"
    _line(pdf, f"Operator: {case.operator}. Opened {_when(case.opened_at)}, {status}. Searches: {len(searches)}.")
    if case.notes:
        _line(pdf, f"Notes: {case.notes}")
    _line(
        pdf,
        f"Report generated {_when(datetime.now(UTC))} by {generated_by} with SketchSearch {app_version}.",
    )
    # the full check (every record against its entry), never the chain alone: a report must not
    # certify what `audit verify` rejects
    if audit.ok:
        verdict = "verified: the chain, and every case, search, result and review against its entry"
        verdict += ", every entry sealed under the audit key" if sealed else ""
    else:
        extra = f" (and {len(audit.problems) - 1} more problem(s))" if len(audit.problems) > 1 else ""
        verdict = f"NOT VERIFIED: {audit.problem}{extra}"
    _line(pdf, f"Audit log: {audit.entries} entries, {verdict}.", 8.5)
    _line(
        pdf,
        f"Audit head at this report: {audit.entries}:{audit.head_sha256}. Keep it outside the data folder: "
        f"'sketchsearch audit verify --against {audit.entries}:{audit.head_sha256[:8]}...' with the full value "
        "fails if the log was later rewritten or cut back.",
        8,
    )
    pdf.ln(2)
    pdf.set_draw_color(0)
    pdf.set_fill_color(245, 240, 225)
    pdf.use_font(9.5, bold=True)
    pdf.multi_cell(0, 5, pdf.clean(DISCLAIMER), border=1, fill=True, align="L", new_x="LMARGIN", new_y="NEXT")
    _line(pdf, SCORE_NOTE, 8)
    if not searches:
        _line(pdf, "No search has been recorded in this case.", 10)
    for search in searches:
        if search.revisions:
            _search_block(pdf, search, marks.get(search.id, {}))
    return write_private_file(Path(path), bytes(pdf.output()), "report")
