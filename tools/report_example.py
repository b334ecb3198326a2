#!/usr/bin/env python3
"""Write an example case report from generated figures (never research data): the page shown in
docs/case-report.png is made with it.

    python tools/report_example.py OUT.pdf [--photos 50] [--png docs/case-report.png]

A gallery of drawn figures is imported into a temporary data folder with the shipped model, a
drawing and a drawing over a "scanned" paper sketch are searched and recorded in a case, some
candidates are reviewed, and the report is written. With ``--png`` the report's second page is
rendered with pdftoppm (at 110 dpi) to that file."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SKIN = ((236, 200, 170), (200, 150, 110), (150, 100, 70), (110, 75, 55))
HAIR = ((30, 25, 20), (90, 60, 30), (200, 170, 110), (120, 120, 120))


def figure_photo(seed: int, size: tuple[int, int] = (128, 256)) -> Image.Image:
    """A standing person drawn in flat colours on a street-like background (unique per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    ground = tuple(int(v) for v in rng.integers(90, 170, 3))
    wall = tuple(int(v) for v in rng.integers(150, 230, 3))
    image = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, h * 0.78, w, h], fill=ground)
    for _ in range(6):  # windows and doors behind
        x, y = rng.integers(0, w), rng.integers(0, int(h * 0.6))
        draw.rectangle([x, y, x + rng.integers(10, 30), y + rng.integers(15, 40)], fill=tuple(c - 40 for c in wall))
    skin, hair = SKIN[seed % len(SKIN)], HAIR[rng.integers(0, len(HAIR))]
    top = tuple(int(v) for v in rng.integers(0, 255, 3))
    legs = tuple(int(v) for v in rng.integers(0, 200, 3))
    cx, width = w / 2 + rng.normal(0, 4), w * rng.uniform(0.36, 0.48)
    head = w * rng.uniform(0.11, 0.14)
    draw.ellipse([cx - head, h * 0.06, cx + head, h * 0.06 + 2.3 * head], fill=skin)
    draw.chord([cx - head, h * 0.05, cx + head, h * 0.06 + 1.6 * head], 180, 360, fill=hair)
    if rng.random() < 0.5:  # long hair
        draw.rectangle([cx - head, h * 0.09, cx - head * 0.7, h * 0.2], fill=hair)
        draw.rectangle([cx + head * 0.7, h * 0.09, cx + head, h * 0.2], fill=hair)
    shoulders, waist = h * 0.2, h * rng.uniform(0.48, 0.55)
    half, low = width / 2, width * 0.4
    draw.polygon([(cx - half, shoulders), (cx + half, shoulders), (cx + low, waist), (cx - low, waist)], fill=top)
    arm = w * 0.07
    for side in (-1, 1):
        x = cx + side * width / 2
        hand = x + side * arm * 1.4
        draw.polygon([(x, shoulders), (x + side * arm, shoulders + 8), (hand, waist), (x, waist)], fill=top)
        draw.ellipse([hand - 5, waist - 4, hand + 5, waist + 6], fill=skin)
    gap = w * 0.03
    for side in (-1, 1):
        inner, outer = cx + side * gap, cx + side * width * 0.38
        foot = h * 0.93
        draw.polygon([(inner, waist), (outer, waist), (outer - side * 2, foot), (inner + side * 2, foot)], fill=legs)
        draw.rectangle([min(inner, outer) - 2, h * 0.93, max(inner, outer) + 2, h * 0.96], fill=(30, 30, 30))
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6)
    )


def figure_strokes(width: int, height: int, long_hair: bool) -> list[list[tuple[float, float]]]:
    """A pencil figure's strokes in page pixels: head, hair, body, arms, legs."""
    cx, t = width / 2, np.linspace(0, 2 * np.pi, 40)
    head = [(cx + 0.13 * width * np.cos(a), 0.12 * height + 0.065 * height * np.sin(a)) for a in t]
    strokes = [head, [(cx - 0.13 * width, 0.1 * height), (cx, 0.05 * height), (cx + 0.13 * width, 0.1 * height)]]
    if long_hair:
        strokes += [[(cx - 0.14 * width, 0.1 * height), (cx - 0.15 * width, 0.21 * height)]]
        strokes += [[(cx + 0.14 * width, 0.1 * height), (cx + 0.15 * width, 0.21 * height)]]
    body = [(cx - 0.22 * width, 0.2 * height), (cx + 0.22 * width, 0.2 * height), (cx + 0.18 * width, 0.52 * height)]
    strokes += [body + [(cx - 0.18 * width, 0.52 * height), (cx - 0.22 * width, 0.2 * height)]]
    for side in (-1, 1):
        strokes += [[(cx + side * 0.22 * width, 0.21 * height), (cx + side * 0.3 * width, 0.5 * height)]]
        strokes += [[(cx + side * 0.03 * width, 0.52 * height), (cx + side * 0.16 * width, 0.94 * height)]]
        strokes += [[(cx + side * 0.17 * width, 0.52 * height), (cx + side * 0.2 * width, 0.94 * height)]]
    return strokes


def render(strokes, size: tuple[int, int], paper: Image.Image | None = None, width: int = 4) -> np.ndarray:
    image = paper.convert("RGB") if paper is not None else Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=(25, 25, 25), width=width, joint="curve")
    return np.asarray(image)


def build(out: Path, photos: int, png: Path | None) -> Path:
    from core.casework.records import ReviewMark
    from core.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="report-example-"))
    try:
        gallery = work / "gallery" / "station-cctv-2026-11-28"
        gallery.mkdir(parents=True)
        for seed in range(photos):
            figure_photo(seed).save(gallery / f"cam3_{1400 + seed * 7:05d}.jpg", quality=92)
        with Workspace(work / "data") as workspace:
            workspace.desk.set_operator("A. Moreau", remember=True)
            workspace.import_paths([gallery])
            case = workspace.desk.new_case(
                "2026-0142", "Harbour street robbery", "Witness sketch, drawn on 29 November"
            )
            size = (400, 800)
            drawn = figure_strokes(*size, long_hair=True)
            pixels = render(drawn, size)
            strokes_json = json.dumps({"strokes": [{"points": [[x, y, 1.0] for x, y in s]} for s in drawn]})
            started = datetime.now(UTC)
            ranked = workspace.search_embeddings(workspace.embed_sketches([pixels]), 50)[0]
            search_id, _ = workspace.desk.record_drawn_search(
                pixels, strokes_json, None, ranked, where={}, min_confidence=0.0, top_k=50, started_at=started,
                case_id=case.id,
            )  # fmt: skip
            workspace.desk.review(search_id, 1, ReviewMark.POSSIBLE, "same build and jacket", ranked[0].photo_id)
            workspace.desk.review(search_id, 2, ReviewMark.EXCLUDED, "much shorter than described", ranked[1].photo_id)
            workspace.desk.review(search_id, 17, ReviewMark.POSSIBLE, "hair as the witness said", ranked[16].photo_id)
            paper = Image.new("L", size, 236)
            scan_strokes = figure_strokes(*size, long_hair=False)
            scanned = Image.fromarray(render(scan_strokes, size, paper, width=3)).convert("L")
            scan_file = work / "witness-scan.png"
            scanned.save(scan_file)
            over = [[(200, 560), (200, 700)]]  # a line drawn over the scan in the window
            over_pixels = render(over, size, scanned)
            over_json = json.dumps({"strokes": [{"points": [[x, y, 1.0] for x, y in s]} for s in over]})
            ranked = workspace.search_embeddings(workspace.embed_sketches([over_pixels]), 50)[0]
            workspace.desk.record_drawn_search(
                over_pixels, over_json, (str(scan_file), scan_file.read_bytes()), ranked, where={},
                min_confidence=0.0, top_k=50, started_at=datetime.now(UTC), case_id=case.id,
            )  # fmt: skip
            written = workspace.desk.export_case_report(case.number, out)
        if png is not None:
            subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "2", "-l", "2", str(written), str(work / "page")])
            shutil.copyfile(next(work.glob("page-*.png")), png)
        return written
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--png", type=Path, help="also render the report's second page to this PNG")
    args = parser.parse_args()
    print(build(args.out.resolve(), args.photos, args.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
