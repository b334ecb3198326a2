"""The case report's line under a candidate cut from video: where and when it was seen, the box,
the track, the detector and the video's sha256 (kept apart from the report's layout)."""

from __future__ import annotations

from fpdf import FPDF

from core.common.types import VideoSource

LINE_MM = 3.4


def video_provenance_text(source: VideoSource) -> str:
    """Where a candidate cut from video was seen, as the report states it."""
    x0, y0, x1, y1 = source.box
    return (
        f"Seen in video {source.video_name} at {source.time_text} (frame {source.frame_index}), "
        f"box {x0},{y0}-{x1},{y1} of {source.frame_size[0]}x{source.frame_size[1]}, track {source.track_id}; "
        f"found by {source.detector} (detector score {source.score:.2f}); video sha256 {source.video_sha256}"
    )


def draw_video_provenance(pdf: FPDF, source: VideoSource | None, x: float, y: float) -> float:
    """Draw the provenance of a candidate cut from video at (x, y), across the rest of the line, in
    lines drawn one by one (no page break inside a candidate's row); returns the height taken (0:
    not cut from video)."""
    if source is None:
        return 0.0
    pdf.use_font(7)
    width = pdf.w - pdf.r_margin - x
    lines = pdf.multi_cell(width, LINE_MM, pdf.clean(video_provenance_text(source)), dry_run=True, output="LINES")
    for i, line in enumerate(lines):
        pdf.set_xy(x, y + i * LINE_MM)
        pdf.cell(0, LINE_MM, line)
    return LINE_MM * len(lines) + 1
