"""The case report as PDF (fpdf2: no Qt, so the command line writes the same report as the window).

It lays out what core.casework.report_data gathered: the case header with who generated it, every
search of the case (the query described plainly, filters, model, gallery state, time, operator and
OS account), its candidates (the top N and every reviewed one, "N of M shown") as the query beside
each photo with the photo's file, score, region map and review mark, the audit chain's head hash,
the statement that candidates are investigative leads, and an appendix of every full sha256."""

from __future__ import annotations

import io
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from core.casework.report_data import CaseReport, ReportSearch, ShownCandidate, short
from core.casework.report_video import LINE_MM, draw_video_provenance
from core.casework.weak import weak_result_warning
from core.common.operator import describe
from core.common.private_files import write_private_file
from core.model.regions import MIRROR_NOTE, REGION_AID, REGION_SOURCE, SCALE, RegionSimilarity, tint

DISCLAIMER = (
    "Candidates are investigative leads, not identifications. Each ranking is the model's "
    "similarity between the sketch and the gallery photos; a person must review every candidate, "
    "and no candidate may be treated as the suspect on the strength of this report."
)
SCORE_NOTE = (
    "Scores: cosine similarity of the sketch's and the photo's embeddings computed by the named "
    "model (from -1 to 1); they rank photos, they are not probabilities. Marks: decisions recorded "
    "by the named operator; beside each name, the operating-system account the program ran under."
)
QUERY_NOTE = (
    "Query kinds: 'sketch file': a file searched from the command line (sha256 of the file as read). "
    "'imported scan': a scanned paper sketch imported in the window and searched as imported. 'drawing': drawn "
    "in the window. 'drawing over imported scan': strokes drawn in the window over an imported scan. For the "
    "window's searches two hashes are given: the scan file's, as read, and the picture searched (the scan and "
    "strokes as given to the model, kept with the record). Hashes are shortened to 12 hex digits; the appendix "
    "lists each in full."
)
FILES_NOTE = (
    "File names and folders are the gallery's as catalogued when this report was made; the sha256 "
    "identifies the photo that was ranked."
)
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "C:/Windows/Fonts/arial.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
)
PICTURE_W, PICTURE_H = 27.0, 54.0  # mm: each picture of a candidate row (three times the earlier 9 x 18)
RANK_W = 18.0
GAP = 1.5
ROW_H = PICTURE_H + 4
ORANGE = (160, 60, 0)


class _ReportPDF(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.unicode = False
        for candidate in _FONT_PATHS:
            if Path(candidate).is_file():  # a Unicode font where one is installed: notes keep their accents
                self.add_font("report", "", candidate)
                bold = Path(candidate).with_name(Path(candidate).stem + "-Bold.ttf")
                self.add_font("report", "B", str(bold if bold.is_file() else candidate))
                self.unicode = True
                break
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(True, margin=16)
        self.alias_nb_pages("{pages}")  # room for four digits: a case of hundreds of searches

    def use_font(self, size: float, bold: bool = False) -> None:
        self.set_font("report" if self.unicode else "helvetica", "B" if bold else "", size)

    def clean(self, value) -> str:
        text = str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    @property
    def width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def footer(self) -> None:
        self.set_y(-12)
        self.use_font(7.5)
        self.set_text_color(90)
        self.cell(0, 5, self.clean(f"{self.footer_text}  |  page {self.page_no()} of {{pages}}"), align="C")
        self.set_text_color(0)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _wrap(text: str, size: float, width_mm: float) -> list[str]:
    """Lines that fit ``width_mm`` at ``size`` points, by a generous average glyph width: fpdf2's
    own line breaking measures every glyph and is most of the time of a large report."""
    chars = max(12, int(width_mm / (size * 0.3528 * 0.58)))  # 0.58 em: about the widest digits
    if len(text) <= chars and text.isprintable():
        return [text.strip()]  # most lines: short enough as they are
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, chars, break_long_words=True, break_on_hyphens=False) or [""]
    return lines


def _path_lines(path: str, size: float, width_mm: float) -> list[str]:
    """A path in lines broken after a folder separator where it can be (``_wrap`` cuts what is left)."""
    chars = max(12, int(width_mm / (size * 0.3528 * 0.58)))
    lines, line = [], ""
    for part in re.split(r"(?<=[/\\])", path):
        if line and len(line) + len(part) > chars:
            lines.append(line)
            line = ""
        line += part
    return [*lines, line] if line else lines


def _put(pdf: _ReportPDF, x: float, y: float, height: float, text: str, width: float = 0, align: str = "L") -> None:
    """One line in the box at (x, y) of ``height`` (and ``width``, to centre or right-align it),
    placed where fpdf2's ``cell`` places it but written directly: ``cell`` lays out styled fragments
    on every call, which was most of a large report's time."""
    if not text:
        return
    if align == "L":
        dx = pdf.c_margin
    else:
        text_w = pdf.get_string_width(text)
        dx = (width - text_w) / 2 if align == "C" else width - pdf.c_margin - text_w
    pdf.text(x + dx, y + 0.5 * height + 0.3 * pdf.font_size, text)


def _text(pdf: _ReportPDF, text: str, size: float = 9, bold: bool = False, height: float = 4.6, indent: float = 0):
    """A paragraph in the flow of the page, wrapped, on a new page where it reaches the bottom."""
    pdf.use_font(size, bold)
    for line in _wrap(pdf.clean(text), size, pdf.width - indent):
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
        y = pdf.get_y()
        _put(pdf, pdf.l_margin + indent, y, height, line)
        pdf.set_y(y + height)


def _lines_at(pdf: _ReportPDF, x: float, y: float, width: float, lines: list[tuple[str, float, bool]]) -> float:
    """(text, size, bold) lines wrapped into a column at (x, y); returns the y below them."""
    for text, size, bold in lines:
        pdf.use_font(size, bold)
        height = size * 0.3528 * 1.35
        for line in _wrap(pdf.clean(text), size, width):
            _put(pdf, x, y, height, line)
            y += height
    return y


def _box(pdf: _ReportPDF, text: str, size: float = 9.5, fill=(245, 240, 225)) -> None:
    pdf.set_draw_color(0)
    pdf.set_fill_color(*fill)
    pdf.use_font(size, bold=True)
    pdf.multi_cell(0, size * 0.53, pdf.clean(text), border=1, fill=True, align="L", new_x="LMARGIN", new_y="NEXT")


# -- pictures ---------------------------------------------------------------------------------
def _picture(pdf: _ReportPDF, data: bytes | None, x: float, y: float, w: float = PICTURE_W, h: float = PICTURE_H):
    """An image fitted inside the box (aspect kept, centred) on a light frame; returns its rectangle."""
    pdf.set_draw_color(200)
    pdf.rect(x, y, w, h)
    if not data:
        pdf.use_font(7)
        _put(pdf, x, y + h / 2 - 2, 4, "no picture", w, "C")
        return x, y, w, h
    info = pdf.image(io.BytesIO(data), x=x, y=y, w=w, h=h, keep_aspect_ratio=True)
    width, height = float(info.rendered_width), float(info.rendered_height)
    return x + (w - width) / 2, y + (h - height) / 2, width, height


def _region_labels(similarity: RegionSimilarity) -> list[tuple[int, int, int, float]]:
    """(row, first column, columns spanned, cosine) of each label: one per cell, or for a mirrored
    model of two columns one across each row (its region)."""
    if similarity.mirrored and similarity.columns == 2:
        return [(row, 0, 2, similarity.cells[row][0]) for row in range(similarity.rows)]
    return [(r, c, 1, similarity.cells[r][c]) for r in range(similarity.rows) for c in range(similarity.columns)]


def _grid(pdf: _ReportPDF, rect, rows: int, columns: int, mirrored: bool) -> None:
    x, y, w, h = rect
    pdf.set_draw_color(120)
    pdf.set_line_width(0.15)
    for row in range(1, rows):
        pdf.line(x, y + h * row / rows, x + w, y + h * row / rows)
    if not (mirrored and columns == 2):  # there a row is one region
        for column in range(1, columns):
            pdf.line(x + w * column / columns, y, x + w * column / columns, y + h)
    pdf.set_line_width(0.2)


def _tints(pdf: _ReportPDF, rect, similarity: RegionSimilarity) -> None:
    """Each region's tint over the picture, and its figure written in it."""
    x, y, w, h = rect
    cell_w, cell_h = w / similarity.columns, h / similarity.rows
    with pdf.local_context(fill_opacity=0.55):
        for row in range(similarity.rows):
            for column in range(similarity.columns):
                pdf.set_fill_color(*tint(similarity.cells[row][column]))
                pdf.rect(x + column * cell_w, y + row * cell_h, cell_w, cell_h, style="F")
    _grid(pdf, rect, similarity.rows, similarity.columns, similarity.mirrored)
    pdf.use_font(6.5, bold=True)
    for row, column, span, value in _region_labels(similarity):
        _put(pdf, x + column * cell_w, y + row * cell_h + cell_h / 2 - 1.6, 3.2, f"{value:+.2f}", cell_w * span, "C")


def _legend(pdf: _ReportPDF, mirrored: bool, region_top: int) -> None:
    """The colour scale and what the region map is, before a search's candidates."""
    if pdf.get_y() > pdf.h - 45:
        pdf.add_page()
    y = pdf.get_y() + 1
    steps, bar_w = 11, 44.0
    pdf.use_font(7)
    for i in range(steps):
        value = -SCALE + 2 * SCALE * i / (steps - 1)
        pdf.set_fill_color(*tint(value))
        pdf.rect(pdf.l_margin + i * bar_w / steps, y, bar_w / steps, 4, style="F")
    pdf.set_draw_color(150)
    pdf.rect(pdf.l_margin, y, bar_w, 4)
    for value, align, left in ((-SCALE, "L", 0), (0.0, "C", bar_w / 2 - 6), (SCALE, "R", bar_w - 12)):
        label = f"{value:+.1f} or less" if value < 0 else f"{value:+.1f} or more" if value > 0 else "0"
        _put(pdf, pdf.l_margin + left, y + 4.2, 3, label, 12, align)
    words = (
        f"Region map (third picture of a row, drawn for the top {region_top} candidates and every reviewed one): "
        "each region of the photo tinted by how alike the model found it and "
        "the same region of the query (cropped to its marks and stretched as the model is given it, first picture), "
        "blue: unlike, white: neither, orange: alike; the figure is the region's cosine similarity."
    )
    if mirrored:
        words += " " + MIRROR_NOTE
    bottom = _lines_at(pdf, pdf.l_margin + bar_w + 4, y - 0.5, pdf.width - bar_w - 4, [(words, 7, False)])
    pdf.set_y(max(bottom + 0.5, y + 9))
    pdf.set_text_color(*ORANGE)
    _text(pdf, REGION_AID, 7.5, bold=True, height=3.8)
    pdf.set_text_color(0)


# -- the report's parts ------------------------------------------------------------------------
def _query_lines(item: ReportSearch) -> list[str]:
    q = item.query
    if q.kind == "sketch file":
        return [f"Query: sketch file {q.file_name}, file sha256 {short(q.file_sha256)}"]
    if q.kind == "drawing":
        drawn = f"{q.strokes} stroke(s) drawn in the window"
        return [f"Query: drawing ({drawn}); picture searched sha256 {short(q.picture_sha256)}"]
    strokes = f", {q.strokes} stroke(s) drawn over it" if q.strokes else ", searched as imported (no strokes)"
    return [
        f"Query: {q.kind} {q.file_name}{strokes}",
        f"scan file sha256 {short(q.file_sha256)}; picture searched sha256 {short(q.picture_sha256)}",
    ]


def _shown_line(item: ReportSearch) -> str:
    shown, total = len(item.shown), item.total
    below = sum(1 for s in item.shown if s.candidate.rank > item.top)
    text = f"Candidates: {shown} of {total} shown"
    if shown < total:
        text += f" (the top {min(item.top, total)} and every reviewed one"
        text += f", {below} of them ranked below {item.top})" if below else ")"
        text += (
            f". The {total - shown} not shown were neither in the top {item.top} nor reviewed; all {total} are "
            f"in audit entry {item.search.latest.audit_seq} and in 'sketchsearch case show'."
        )
    else:
        text += " (all of the ranking)."
    return text


def _search_block(pdf: _ReportPDF, item: ReportSearch) -> None:
    search, latest = item.search, item.search.latest
    if pdf.get_y() > pdf.h - 175:  # the query, the legend and a first candidate together
        pdf.add_page()
    pdf.ln(3)
    title = f"Search {search.id}"
    if len(search.revisions) > 1:
        title += f", revision {latest.revision} of {len(search.revisions)} (earlier rankings are in the audit log)"
    _text(pdf, title, 12, bold=True, height=6.5)
    top = pdf.get_y()
    _picture(pdf, search.query_png, pdf.l_margin, top, 30, 44)
    filters = ", ".join(f"{k}={v}" for k, v in sorted(latest.filters.items())) or "none"
    operator = describe(latest.operator, item.account)
    details = [
        *_query_lines(item),
        # a ranking taken over from another record (core.casework.takeover)
        *([f"Origin: {search.origin}"] if search.origin else []),
        f"Searched {_when(latest.started_at)} to {_when(latest.finished_at)} by {operator}"
        + (f"; first searched by {search.operator}" if latest.operator != search.operator else ""),
        f"Model: {latest.model_name}, embedding key {latest.embedding_key[:16]}",
        f"Gallery: {latest.gallery.photos} photo(s), last import {latest.gallery.last_import or 'none'}",
        f"Filters: {filters}; predicted values counted from confidence {latest.min_confidence:.2f}; top {latest.top_k}",
        f"Recorded by SketchSearch {search.app_version}; audit entry {latest.audit_seq}",
    ]
    pdf.set_y(top)
    for text in details:
        _text(pdf, text, 8.5, height=4.3, indent=34)
    if latest.query_warnings:  # beside the query picture: what was found wrong with it when searched
        pdf.set_text_color(*ORANGE)
        for text in latest.query_warnings:
            _text(pdf, f"Query warning: {text}", 8.5, height=4.3, indent=34)
        pdf.set_text_color(0)
    pdf.set_y(max(pdf.get_y(), top + 46))
    warning = weak_result_warning([c.score for c in latest.candidates])
    if warning:
        pdf.set_text_color(*ORANGE)
        _text(pdf, warning, 8.5)
        pdf.set_text_color(0)
    _text(pdf, _shown_line(item), 9, bold=True, height=4.8)
    if not item.shown:
        _text(pdf, "No candidate matched.", 9)
        return
    has_regions = any(s.regions is not None and s.regions.similarity is not None for s in item.shown)
    if has_regions:
        mirrored = next(s.regions.similarity.mirrored for s in item.shown if s.regions and s.regions.similarity)
        _legend(pdf, mirrored, item.region_top)
    else:
        _text(pdf, f"No region map: {item.regions_unavailable or 'not available'}.", 8, height=4)
    pdf.ln(1)
    labelled: set[tuple[str, int]] = set()
    for shown in item.shown:
        _candidate_row(pdf, item, shown, labelled)


def _candidate_row(pdf: _ReportPDF, item: ReportSearch, shown: ShownCandidate, labelled: set[tuple[str, int]]) -> None:
    """One candidate: rank and score, the query, the photo and its region map, its file and review.
    The pictures' captions (and, where it has none, why a row has no map) are written once per search
    on each page, in ``labelled``: the same words on every row were a tenth of a large report's time."""
    c, review = shown.candidate, shown.review
    x0 = pdf.l_margin
    text_x = x0 + RANK_W + 3 * (PICTURE_W + GAP) + 1
    text_w = pdf.w - pdf.r_margin - text_x
    if review:
        label = review.mark.label[0].upper() + review.mark.label[1:]
        mark = f"{label}: {describe(review.operator, shown.review_account)}, {_when(review.at)}"
        review_lines = [(mark, 8.5, True)] + ([(f"Note: {review.note}", 8.5, False)] if review.note else [])
    else:
        review_lines = [("Not reviewed", 8.5, False)]
    lines = [
        (shown.file_name or f"photo #{c.photo_id} (no longer in the gallery)", 9.5, True),
        *((line, 7.5, False) for line in _path_lines(f"folder {shown.folder}" if shown.folder else "", 7.5, text_w)),
        (f"photo #{c.photo_id}   sha256 {short(c.photo_sha256)}", 7.5, False),
    ]
    if shown.where_note:
        lines.append((f"Note: {shown.where_note}", 7.5, False))
    regions = shown.regions
    if regions is not None and regions.similarity is None:
        lines.append((f"No region map: {regions.unavailable}", 7, False))
    needed = max(ROW_H, 2 + sum(len(_wrap(t, s, text_w)) * s * 0.3528 * 1.35 for t, s, _ in lines + review_lines) + 3)
    needed += 4 * LINE_MM if shown.video else 0  # cut from video: where it was seen
    if pdf.get_y() + needed > pdf.h - pdf.b_margin:
        pdf.add_page()
    y = pdf.get_y() + 1
    captions = ("captions", pdf.page_no()) not in labelled
    labelled.add(("captions", pdf.page_no()))
    pdf.set_draw_color(180)
    pdf.line(x0, y - 1, pdf.w - pdf.r_margin, y - 1)
    pdf.use_font(13, bold=True)
    _put(pdf, x0, y + 1, 6, f"#{c.rank}")
    pdf.use_font(8)
    _put(pdf, x0, y + 8, 4, "score")
    pdf.use_font(9, bold=True)
    _put(pdf, x0, y + 12, 4, f"{c.score:+.4f}")
    x = x0 + RANK_W
    similarity = regions.similarity if regions is not None else None
    sketch = item.sketch_view_png or item.search.query_png
    rect = _picture(pdf, sketch, x, y)
    if similarity is not None:
        _grid(pdf, rect, similarity.rows, similarity.columns, similarity.mirrored)
    if captions:
        _caption(pdf, x, y, "query (model's view)" if item.sketch_view_png else "query")
    x += PICTURE_W + GAP
    _picture(pdf, c.thumbnail, x, y)
    if captions:
        _caption(pdf, x, y, "photo")
    x += PICTURE_W + GAP
    if similarity is not None:
        _tints(pdf, _picture(pdf, c.thumbnail, x, y), similarity)
        _caption(pdf, x, y, "regions")
    elif regions is None and item.sketch_view_png and ("unmapped", pdf.page_no()) not in labelled:
        labelled.add(("unmapped", pdf.page_no()))  # the search has maps, this row (and those below it) none
        pdf.use_font(6.5)
        pdf.set_text_color(90)
        _put(pdf, x, y + PICTURE_H / 2 - 3, 3, "no region map", PICTURE_W, "C")
        _put(pdf, x, y + PICTURE_H / 2, 3, f"(top {item.region_top} and reviewed)", PICTURE_W, "C")
        pdf.set_text_color(0)
    bottom = _lines_at(pdf, text_x, y, text_w, [line for line in lines if line[0]])
    bottom = _lines_at(pdf, text_x, bottom + 1.5, text_w, review_lines)
    bottom += draw_video_provenance(pdf, shown.video, text_x, bottom + 1)
    pdf.set_y(max(y + PICTURE_H + 4, bottom + 2))


def _caption(pdf: _ReportPDF, x: float, y: float, text: str) -> None:
    pdf.use_font(6.5)
    pdf.set_text_color(90)
    _put(pdf, x, y + PICTURE_H, 3, text, PICTURE_W, "C")
    pdf.set_text_color(0)


def _appendix(pdf: _ReportPDF, report: CaseReport) -> None:
    """Every hash the report shortens, in full: the query's and each shown candidate's."""
    pdf.add_page()
    _text(pdf, "Appendix: full sha256 values", 12, bold=True, height=6.5)
    _text(pdf, "Each hash shortened in the report above, in full, to compare with the files themselves.", 8.5)
    pdf.ln(1)
    widths = (14, 10, 56)
    headings = ("search", "rank", "what")
    sha_w = pdf.width - sum(widths)

    def heading() -> None:
        pdf.use_font(8, bold=True)
        for text, width in zip(headings, widths, strict=True):
            pdf.cell(width, 5, text, border="B")
        pdf.cell(sha_w, 5, "sha256", border="B", new_x="LMARGIN", new_y="NEXT")

    heading()
    for item in report.searches:
        q = item.query
        rows = []
        if q.file_sha256:
            rows.append(("", f"{q.kind.replace('drawing over ', '')} file {Path(q.file_name).name}", q.file_sha256))
        if q.picture_sha256 != q.file_sha256:
            rows.append(("", "query: picture searched", q.picture_sha256))
        for shown in item.shown:
            name = shown.file_name or "(no longer in the gallery)"
            c = shown.candidate
            rows.append((str(c.rank), f"#{c.photo_id} {name}", c.photo_sha256))
        for rank, what, sha in rows:
            if pdf.get_y() + 4.4 > pdf.h - pdf.b_margin:
                pdf.add_page()
                heading()
            y, x = pdf.get_y(), pdf.l_margin
            pdf.use_font(7.5)
            _put(pdf, x, y, 4.4, str(item.search.id))
            _put(pdf, x + widths[0], y, 4.4, rank)
            what = pdf.clean(what)
            _put(pdf, x + widths[0] + widths[1], y, 4.4, what if len(what) <= 40 else what[:39] + "…")
            pdf.set_font("courier", "", 7.2)
            _put(pdf, x + sum(widths), y, 4.4, sha)
            pdf.set_y(y + 4.4)


def write_case_report(path: Path, report: CaseReport) -> Path:
    """Write the report to ``path`` (atomically, 0600)."""
    case, audit = report.case, report.audit
    pdf = _ReportPDF(f"SketchSearch case {case.number}  |  audit head {audit.entries}:{audit.head_sha256[:16]}")
    pdf.set_title(f"Case {case.number}")
    pdf.set_creator(f"SketchSearch {report.app_version}")
    pdf.add_page()
    _text(pdf, f"Case {case.number}: {case.title}", 16, bold=True, height=8)
    status = f"closed {_when(case.closed_at)}" if case.closed_at else "open"
    _text(
        pdf,
        f"Opened {_when(case.opened_at)} by {describe(case.operator, report.case_account)}, {status}. "
        f"Searches: {len(report.searches)}.",
    )
    if case.notes:
        _text(pdf, f"Notes: {case.notes}")
    _text(
        pdf,
        f"Report generated {_when(datetime.now(UTC))} by {report.generated_by} with SketchSearch "
        f"{report.app_version}. Each search lists its top {report.top} candidates and every reviewed one, with a "
        f"region map for its top {report.region_top} and every reviewed one.",
    )
    # the full check (every record against its entry), never the chain alone: a report must not
    # certify what `audit verify` rejects
    if audit.ok:
        verdict = "verified: the chain, and every case, search, result and review against its entry"
        verdict += ", every entry sealed under the audit key" if report.sealed else ""
    else:
        extra = f" (and {len(audit.problems) - 1} more problem(s))" if len(audit.problems) > 1 else ""
        verdict = f"NOT VERIFIED: {audit.problem}{extra}"
    _text(pdf, f"Audit log: {audit.entries} entries, {verdict}.", 8.5)
    _text(
        pdf,
        f"Audit head at this report: {audit.entries}:{audit.head_sha256}. Keep it outside the data folder: "
        f"'sketchsearch audit verify --against {audit.entries}:{audit.head_sha256[:8]}...' with the full value "
        "fails if the log was later rewritten or cut back.",
        8,
    )
    pdf.ln(2)
    _box(pdf, DISCLAIMER)
    pdf.ln(1)
    for note in (SCORE_NOTE, QUERY_NOTE, FILES_NOTE, REGION_SOURCE):
        _text(pdf, note, 7.5, height=3.7)
    if not report.searches:
        _text(pdf, "No search has been recorded in this case.", 10)
    for item in report.searches:
        _search_block(pdf, item)
    if report.searches:
        _appendix(pdf, report)
    return write_private_file(Path(path), bytes(pdf.output()), "report")
