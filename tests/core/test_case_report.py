"""The case report as a case officer reads it: a real report written from a gallery of drawn figures
with the shipped model, read back with pypdf (files, short and full hashes, "N of M shown", the
operator beside the OS account, query kinds, the region section) and rendered with pdftoppm (the
thumbnails' size, the query beside each photo)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader

from core.casework.records import ReviewMark
from core.casework.report_data import gather_report
from core.common.operator import os_account
from core.model.regions import REGION_AID

PHOTOS = 24
TOP = 10
OPERATOR = "J. Smith"


def drawn_figure(size=(300, 600)) -> tuple[np.ndarray, str]:
    strokes = [
        [(150, 40), (190, 80), (150, 120), (110, 80), (150, 40)],
        [(90, 130), (210, 130), (200, 330), (100, 330), (90, 130)],
        [(120, 330), (110, 570)],
        [(180, 330), (190, 570)],
    ]
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill="black", width=5)
    return np.asarray(image), json.dumps({"strokes": [{"points": [[x, y, 1.0] for x, y in s]} for s in strokes]})


@pytest.fixture(scope="module")
def report(tmp_path_factory, model_dir):
    """One report of two searches: a drawing (two candidates reviewed, one below the top 10) and a
    sketch file searched as the command line does."""
    from core.workspace import Workspace
    from tests.conftest import draw_person

    root = tmp_path_factory.mktemp("report")
    gallery = root / "gallery" / "camera 3"
    gallery.mkdir(parents=True)
    for i in range(PHOTOS):
        draw_person(i).save(gallery / f"person_{i:04d}.jpg", quality=90)
    with Workspace(root / "data", model_dir=model_dir) as workspace:
        workspace.desk.set_operator(OPERATOR, remember=True)
        workspace.import_paths([gallery])
        case = workspace.desk.new_case("2026-0501", "Ferry terminal theft")
        pixels, strokes = drawn_figure()
        ranked = workspace.search_embeddings(workspace.embed_sketches([pixels]), PHOTOS)[0]
        drawn_id, _ = workspace.desk.record_drawn_search(
            pixels, strokes, None, ranked, where={}, min_confidence=0.0, top_k=PHOTOS,
            started_at=datetime.now(UTC), case_id=case.id,
        )  # fmt: skip
        workspace.desk.review(drawn_id, 2, ReviewMark.POSSIBLE, "same coat", ranked[1].photo_id)
        workspace.desk.review(drawn_id, 15, ReviewMark.EXCLUDED, "too tall", ranked[14].photo_id)
        sketch = root / "witness sketch.png"
        Image.fromarray(pixels).save(sketch)
        _, file_id = workspace.searcher.search_file_recorded(sketch, top_k=PHOTOS, case_id=case.id)
        pdf = workspace.desk.export_case_report(case.number, root / "report.pdf", top=TOP)
        searches = {s.id: s for s in workspace.casework.searches_of_case(case.id)}
        paths = {p.id: p.path for p in workspace.catalogue.photos(workspace.photo_ids().tolist())}
        gathered = gather_report(
            workspace.casework, case.number, top=TOP, regions=workspace.regions, generated_by="", app_version=""
        )
        embedded = _queries_embedded(workspace, [searches[drawn_id], searches[file_id], searches[drawn_id]])
    pages = [page.extract_text() for page in PdfReader(pdf).pages]
    return {
        "pdf": pdf, "pages": pages, "text": " ".join(" ".join(pages).split()), "drawn": searches[drawn_id],
        "file": searches[file_id], "paths": paths, "root": root, "gathered": gathered, "embedded": embedded,
    }  # fmt: skip


def _queries_embedded(workspace, searches):
    """Region figures of ``searches`` (each against its top 3) and the batch sizes the network was
    given for them (the real network runs; the calls are counted on the way)."""
    model = workspace.models.model
    batches = []

    def counted(batch, modality):
        batches.append(len(batch))
        return type(model).embed_preprocessed(model, batch, modality)

    model.embed_preprocessed = counted
    try:
        wanted = [(s, [c.photo_id for c in s.latest.candidates[:3]]) for s in searches]
        return workspace.regions.for_searches(wanted, workspace.casework.query_source), batches
    finally:
        del model.embed_preprocessed


def test_candidates_are_named_by_file_and_folder_with_a_short_hash_and_the_full_one_in_the_appendix(report):
    text, pages = report["text"], report["pages"]
    appendix = " ".join(pages[-1].split())
    body = " ".join(" ".join(pages[:-1]).split())
    assert "Appendix: full sha256 values" in appendix
    for search in (report["drawn"], report["file"]):
        for c in search.latest.candidates[:TOP]:
            path = report["paths"][c.photo_id]
            name = path.rsplit("/", 1)[1]
            assert name in body and f"sha256 {c.photo_sha256[:12]}" in body
            assert c.photo_sha256 not in body  # shortened in the body: no hash wraps over lines
            assert f"{name} {c.photo_sha256}" in appendix
        assert search.query_sha256 in appendix
    assert "camera 3" in text  # the folder


def test_every_reviewed_candidate_and_the_top_n_are_listed_and_the_report_says_how_many_of_how_many(report):
    text = report["text"]
    drawn, file = report["drawn"].latest, report["file"].latest
    assert (
        f"Candidates: {TOP + 1} of {PHOTOS} shown (the top {TOP} and every reviewed one, 1 of them ranked below" in text
    )
    assert f"Candidates: {TOP} of {PHOTOS} shown" in text
    assert f"The {PHOTOS - TOP - 1} not shown were neither in the top {TOP} nor reviewed" in text
    below = drawn.candidates[14]
    assert f"#{below.photo_id} {report['paths'][below.photo_id].rsplit('/', 1)[1]}" in text  # rank 15: reviewed
    not_shown = file.candidates[TOP]
    appendix = " ".join(report["pages"][-1].split())
    assert not_shown.photo_sha256 not in appendix


def test_the_operator_is_one_setting_and_the_os_account_stands_beside_it(report):
    text, account = report["text"], os_account()
    assert f"by {OPERATOR} (OS account: {account}) with SketchSearch" in text  # who generated it
    assert "Opened " in text and f"by {OPERATOR} (OS account: {account}), open" in text
    assert f"Possible lead: {OPERATOR} (OS account: {account})" in text
    assert f"Excluded: {OPERATOR} (OS account: {account})" in text
    assert text.count(f"UTC by {OPERATOR} (OS account: {account})") >= 2  # each search


def test_query_kinds_are_named_plainly_and_explained(report):
    text = report["text"]
    assert "Query: drawing (4 stroke(s) drawn in the window); picture searched sha256" in text
    assert (
        f"Query: sketch file {report['root'] / 'witness sketch.png'}, file sha256 {report['file'].query_sha256[:12]}"
        in text
    )
    assert "Query kinds: 'sketch file':" in text and "'drawing over imported scan':" in text
    assert "drawn sketch" not in text


def test_the_region_section_says_it_is_an_aid_and_where_its_figures_come_from(report):
    text = report["text"]
    assert " ".join(REGION_AID.split()) in text
    assert "Region figures: cosine similarity of one region's part of the sketch's and the photo's embeddings" in text
    assert "Region map (third picture of a row, drawn for the top 3 candidates and every reviewed one)" in text
    assert "with a region map for its top 3 and every reviewed one" in text
    assert "left and right are not told apart" in text  # the shipped model averages mirror images


def test_region_maps_are_drawn_for_the_top_3_and_every_reviewed_candidate_and_agree_with_the_scores(report):
    by_id = {item.search.id: item for item in report["gathered"].searches}
    drawn, file = by_id[report["drawn"].id], by_id[report["file"].id]
    for item, reviewed in ((drawn, {2, 15}), (file, set())):
        mapped = {x.candidate.rank for x in item.shown if x.regions is not None and x.regions.similarity is not None}
        assert mapped == {1, 2, 3} | reviewed
        assert all(x.regions is None for x in item.shown if x.candidate.rank not in mapped)
        for x in item.shown:
            if x.candidate.rank in mapped:  # the query embedded again gives the score the search recorded
                assert x.regions.similarity.score == pytest.approx(x.candidate.score, abs=1e-3)
        assert item.sketch_view_png is not None


def test_a_query_used_by_several_searches_is_embedded_once(report):
    figures, batches = report["embedded"]
    assert batches == [2]  # the drawn query (asked for twice) and the file, in one batch
    first, again = figures[0].by_photo, figures[2].by_photo
    assert first.keys() == again.keys() and len(first) == 3
    assert all(first[p].similarity == again[p].similarity for p in first)


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="pdftoppm (poppler-utils) is not installed")
def test_rendered_thumbnails_are_three_times_the_old_size_beside_the_query(report, tmp_path):
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "2", "-l", "3", report["pdf"], tmp_path / "page"], check=True)
    old_w, old_h = 9 / 25.4 * 60, 18 / 25.4 * 60  # the 9 x 18 mm thumbnails of the earlier report
    beside = []
    for png in sorted(tmp_path.glob("page-*.png")):
        beside += _photos_beside_the_query(np.asarray(Image.open(png).convert("RGB")), 3 * old_w - 2, 3 * old_h - 2)
    assert len(beside) >= 3, (
        f"fewer than 3 thumbnails of at least {3 * old_w:.0f} x {3 * old_h:.0f} px beside the query"
    )
    assert all(0.4 < w / h < 0.6 for _, _, w, h in beside)  # a standing person's proportions, not stretched


def _photos_beside_the_query(page: np.ndarray, min_w: float, min_h: float) -> list[tuple[int, int, int, int]]:
    """Boxes of photos at least ``min_w`` x ``min_h`` px with pencil lines on paper just left of them."""
    # the photos (figures on noise) fill their boxes: solid blocks of no paper white
    saturation = cv2.cvtColor(page, cv2.COLOR_RGB2HSV)[:, :, 1]
    mask = ((255 - page.min(axis=2)) > 70).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    solid = [
        tuple(int(v) for v in stats[i][:4]) for i in range(1, count) if stats[i][4] > 0.8 * stats[i][2] * stats[i][3]
    ]
    found = []
    for x, y, w, h in solid:
        if w < min_w or h < min_h:
            continue
        left = page[y : y + h, max(0, x - w - 4) : x - 2]
        if saturation[y : y + h, max(0, x - w - 4) : x - 2].mean() < 20 and (left.min(axis=2) < 90).sum() > 50:
            found.append((x, y, w, h))
    return found
