"""Casework from the command line: cases, recorded searches, reviews, replay, the audit log of
gallery changes, the PDF report read back with pypdf, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pypdf import PdfReader

from core.casework.report import DISCLAIMER
from core.common.operator import os_account
from tests.core.test_cli import cli
from tests.core.test_photo_audit import import_run


@pytest.fixture
def gallery(tmp_path, make_photos, untrained_model_dir):
    photos = make_photos(8)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert main_ok(data, "import", photos[0].parent)
    return data, photos


def main_ok(data, *argv) -> bool:
    from core.cli.commands import main

    return main([str(a) for a in [*data, *argv]]) == 0


def pdf_text(path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_case_search_review_report(gallery, capsys, tmp_path):
    data, photos = gallery
    capsys.readouterr()
    code, out, _ = cli(capsys, *data, "case", "new", "2026-0142", "--title", "Harbour robbery", "--operator", "ana")
    assert code == 0 and "2026-0142" in out
    code, out, _ = cli(capsys, *data, "search", photos[3], "--top", "5", "--case", "2026-0142", "--json")
    result = json.loads(out)[0]
    search_id = result["search_id"]
    assert code == 0 and len(result["candidates"]) == 5
    note = "same jacket " + "and the same limp, seen on the platform camera at the station " * 4  # never cut
    assert cli(capsys, *data, "review", search_id, 1, "possible", "--note", note, "--operator", "ana")[0] == 0
    assert cli(capsys, *data, "review", search_id, 2, "excluded", "--operator", "bo")[0] == 0

    code, out, _ = cli(capsys, *data, "case", "show", "2026-0142", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["number"] == "2026-0142" and len(shown["searches"]) == 1
    candidates = shown["searches"][0]["candidates"]
    assert [(c["rank"], c["mark"]) for c in candidates[:3]] == [(1, "possible"), (2, "excluded"), (3, None)]
    assert candidates[0]["note"] == note
    assert [c["photo_id"] for c in candidates] == [c["photo_id"] for c in result["candidates"]]

    code, out, _ = cli(capsys, *data, "case", "list", "--json")
    assert [(c["number"], c["searches"]) for c in json.loads(out)] == [("2026-0142", 1)]

    code, out, _ = cli(capsys, *data, "audit", "verify")
    assert code == 0
    head = out.split("head ")[1].strip()  # the report shows the head as it was when written
    report = tmp_path / "report.pdf"
    code, out, err = cli(capsys, *data, "case", "report", "2026-0142", "--pdf", report)
    assert code == 0, err
    text = " ".join(pdf_text(report).split())
    assert "2026-0142" in text and "Harbour robbery" in text
    account = os_account()
    assert f"Possible lead: ana (OS account: {account})" in text and " ".join(note.split()) in text
    assert f"Excluded: bo (OS account: {account})" in text
    assert " ".join(DISCLAIMER.split()) in text
    assert "page 1 of" in text and f"Audit head at this report: {head}" in text
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", report, tmp_path / "page"], check=True)
        assert (tmp_path / "page-1.png").stat().st_size > 0

    assert cli(capsys, *data, "case", "close", "2026-0142")[0] == 0
    code, _, err = cli(capsys, *data, "search", photos[3], "--case", "2026-0142")
    assert code == 2 and "closed" in err and len(err.strip().splitlines()) == 1


def test_replay_says_identical_then_what_changed(gallery, capsys, make_photos):
    data, photos = gallery
    code, out, _ = cli(capsys, *data, "search", photos[2], "--top", "8", "--json")
    search_id = json.loads(out)[0]["search_id"]
    code, out, _ = cli(capsys, *data, "case", "replay", search_id)
    assert code == 0 and "identical ranking" in out

    make_photos(3, start=100)  # new people in the gallery folder
    photos[5].unlink()
    assert main_ok(data, "import", photos[0].parent) and main_ok(data, "prune")
    capsys.readouterr()
    code, out, _ = cli(capsys, *data, "case", "replay", search_id, "--json")
    replay = json.loads(out)
    assert code == 1 and not replay["identical"]
    text = "\n".join(replay["differences"])
    assert "gallery changed: 8 photo(s)" in text and "10 after import" in text
    assert "was removed since" in text and "added since" in text

    # the old record still shows the pruned photo, by its sha256 and thumbnail
    from core.workspace import Workspace

    with Workspace(data[1], data[3]) as workspace:
        recorded = workspace.casework.search(search_id).latest.candidates
        assert len(recorded) == 8 and all(c.thumbnail and len(c.photo_sha256) == 64 for c in recorded)
        kinds = [e.kind for e in workspace.casework.audit_entries()]
    assert kinds[:4] == ["model", "import batch", "import", "search"] and kinds[-3:] == [
        "import batch",
        "import",
        "prune",
    ]


def test_gallery_changes_are_in_the_exported_log(gallery, capsys, tmp_path):
    data, photos = gallery
    assert main_ok(data, "attributes", "set", 1, "gender=female")
    export = tmp_path / "audit.json"
    code, out, _ = cli(capsys, *data, "audit", "export", export)
    entries = json.loads(export.read_text())["entries"]
    for entry in entries:
        entry["payload"] = json.loads(entry["payload_json"])
    assert code == 0 and [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    correction = [e for e in entries if e["kind"] == "attribute correction"]
    assert (
        correction
        and correction[0]["payload"]["values"] == {"gender": "female"}
        and correction[0]["payload"]["photo_id"] == 1
    )
    assert all(e["prev_sha256"] == p["entry_sha256"] for p, e in zip(entries, entries[1:]))
    imported = [e for e in entries if e["kind"] == "import"][0]["payload"]
    assert import_run(data[1], imported["import_id"])["added"] == 8  # the entry names the run's record


@pytest.mark.parametrize(
    "argv, message",
    [
        (["review", "99", "1", "possible"], "no recorded search 99"),
        (["case", "show", "nope"], "no case numbered 'nope'"),
        (["case", "report", "nope", "--pdf", "x.pdf"], "no case numbered 'nope'"),
        (["search", "SKETCH", "--case", "nope"], "no case numbered 'nope'"),
        (["case", "replay", "5"], "no recorded search 5"),
    ],
)
def test_casework_errors_are_one_line(gallery, capsys, argv, message):
    data, photos = gallery
    argv = [str(photos[0]) if a == "SKETCH" else a for a in argv]
    code, _, err = cli(capsys, *data, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_report_to_an_unwritable_place_is_one_line(gallery, capsys, tmp_path):
    data, _ = gallery
    assert main_ok(data, "case", "new", "C-2")
    capsys.readouterr()
    code, _, err = cli(capsys, *data, "case", "report", "C-2", "--pdf", tmp_path / "no" / "such" / "r.pdf")
    assert code == 2 and "cannot write the report" in err and "r.pdf" in err
