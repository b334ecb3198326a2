"""The headless command line: its JSON contract, its errors, and surviving kill -9 mid-import."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from core.cli.commands import main
from core.common.operator import os_account
from tests.conftest import draw_person
from tests.core.test_imaging import bad_files
from tests.core.test_photo_audit import run_entries

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_sketchs_way_from_the_search_command_to_faiss_visits_no_module_twice(
    tmp_path, make_photos, capsys, untrained_model_dir, monkeypatch
):
    from core.index.vectors import VectorIndex

    photos = make_photos(4)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", photos[0].parent)[0] == 0
    chains = []
    search = VectorIndex.search

    def traced(index, *args, **kwargs):  # core.index.vectors' own search, with the modules calling it
        callers = [frame.f_globals["__name__"] for frame, _ in traceback.walk_stack(sys._getframe(1))][::-1]
        chains.append([*callers, search.__module__])
        return search(index, *args, **kwargs)

    monkeypatch.setattr(VectorIndex, "search", traced)
    code, _, _ = cli(capsys, *data, "search", photos[1], "--where", "gender=female")
    assert code == 0 and len(chains) == 1
    ours = [name for name in chains[0] if name.split(".")[0] == "core"]
    visits = [name for i, name in enumerate(ours) if i == 0 or ours[i - 1] != name]
    assert visits == ["core.cli.commands", "core.search", "core.index.service", "core.index.vectors"]


def test_import_search_attributes_verify_stats(tmp_path, make_photos, capsys, untrained_model_dir):
    photos = make_photos(8)
    bad_files(photos[0].parent)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]  # no predicted attributes

    code, out, _ = cli(capsys, *data, "import", photos[0].parent, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["added"] == 8 and len(summary["failed"]) == 5
    assert all(set(f) == {"path", "reason"} for f in summary["failed"])

    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "filename,gender,hair\n"
        + "".join(f"{p.name},{'female' if i < 4 else 'male'},long\n" for i, p in enumerate(photos))
        + "nobody.jpg,male,short\n"
    )
    code, out, _ = cli(capsys, *data, "attributes", "import", sheet)
    assert code == 0 and "set 16" in out and "1 row(s) matched no photo" in out

    code, out, _ = cli(
        capsys, *data, "search", photos[6], photos[1], "--top", "3", "--where", "gender=female", "--json"
    )
    results = json.loads(out)
    assert code == 0 and [r["query"] for r in results] == [str(photos[6]), str(photos[1])]
    first = results[0]["candidates"]
    assert [c["rank"] for c in first] == [1, 2, 3]
    assert set(first[0]) == {"rank", "photo_id", "path", "score", "attributes", "file"}
    assert all(c["attributes"]["gender"]["value"] == "female" for c in first)
    assert all(c["path"] in {str(p) for p in photos[:4]} for c in first)
    imported = first[0]["attributes"]["gender"]  # says where the value comes from: a sheet, who, when
    assert (imported["source"], imported["confidence"], imported["set_by"]) == ("imported", 1.0, os_account())
    assert imported["set_at"].endswith("Z")
    from core.workspace import Workspace

    with Workspace(tmp_path / "data", untrained_model_dir) as workspace:  # the CLI prints what the workspace finds
        expected = workspace.search([photos[6], photos[1]], top_k=3, where={"gender": "female"})
    for printed, result in zip(results, expected):
        assert [c["photo_id"] for c in printed["candidates"]] == [c.photo_id for c in result.candidates]

    photo_id = results[1]["candidates"][0]["photo_id"]
    code, _, _ = cli(capsys, *data, "attributes", "set", photo_id, "gender=male", "bag=yes", "--operator", "d.sgt.ray")
    assert code == 0
    code, out, _ = cli(capsys, *data, "search", photos[1], "--top", "3", "--where", "bag=yes", "--json")
    (only,) = json.loads(out)[0]["candidates"]  # the one photo with a bag
    values = {name: (a["value"], a["source"], a["set_by"]) for name, a in only["attributes"].items()}
    assert only["photo_id"] == photo_id
    assert values == {
        "bag": ("yes", "manual", "d.sgt.ray"),
        "gender": ("male", "manual", "d.sgt.ray"),
        "hair": ("long", "imported", os_account()),  # not touched by the correction
    }

    code, out, _ = cli(capsys, *data, "verify")
    assert code == 0 and out.startswith("ok")
    code, out, _ = cli(capsys, *data, "stats", "--json")
    stats = json.loads(out)
    assert (stats["photos"], stats["indexed"], stats["failed"]) == (8, 8, 5)
    assert stats["model"]["name"] and len(stats["model"]["sha256"]) == 64
    assert stats["model"]["loaded"] is False  # stats needs no network


def test_json_says_a_prediction_is_a_prediction():
    from datetime import datetime

    from core.common.types import AttributeSource, AttributeValue

    assert AttributeValue("no", 0.6234, AttributeSource.MODEL).to_json() == {
        "value": "no",
        "source": "predicted",
        "confidence": 0.6234,
        "set_by": None,
        "set_at": None,
    }
    manual = AttributeValue("yes", 1.0, AttributeSource.MANUAL, "j.doe", datetime(2026, 11, 30, 6, 1, 2))
    assert manual.to_json()["source"] == "manual" and manual.to_json()["set_at"] == "2026-11-30T06:01:02Z"


def test_text_search_output_labels_rank_score_and_photo_id(tmp_path, make_photos, capsys, untrained_model_dir):
    photos = make_photos(2)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", photos[0].parent)[0] == 0
    code, out, _ = cli(capsys, *data, "search", photos[1], "--top", "2", "--json")
    expected = json.loads(out)[0]["candidates"]
    code, out, _ = cli(capsys, *data, "search", photos[1], "--top", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"{photos[1]}  (recorded as search ")
    warnings = [line for line in lines[1:] if line.startswith("  warning: ")]  # the query is a gallery photo
    assert any("is a gallery photo" in line for line in warnings)
    for line, candidate in zip(lines[1 + len(warnings) :], expected, strict=True):
        words = line.split()
        assert words[:3] == ["rank", str(candidate["rank"]), "score"]
        assert words[4:8] == ["photo", "id", str(candidate["photo_id"]), candidate["path"]]


def test_sheet_keyed_by_person_id(tmp_path, make_photos, capsys, untrained_model_dir):
    folder = tmp_path / "people"
    folder.mkdir()
    for person, view in (("0012", "a"), ("0012", "b"), ("0047", "a"), ("nobody", "a")):
        draw_person(hash((person, view)) % 1000).save(folder / f"{person}_{view}.jpg")
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", folder)[0] == 0
    sheet = tmp_path / "people.csv"
    sheet.write_text("id,gender\n0012,female\n0047,male\n0099,male\n")

    code, _, err = cli(capsys, *data, "attributes", "import", sheet)  # no path/filename column: say what to do
    assert code == 2 and "--key id" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, *data, "attributes", "import", sheet, "--key", "id", "--id-pattern", "([0-9]+")
    assert code == 2 and "--id-pattern" in err and "not a regular expression" in err

    code, out, _ = cli(capsys, *data, "attributes", "import", sheet, "--key", "id", "--id-pattern", r"^(\d+)_")
    assert code == 0 and "set 3 attribute value(s); 1 row(s) matched no photo" in out
    from core.workspace import Workspace

    with Workspace(tmp_path / "data", untrained_model_dir) as workspace:
        by_name = {Path(r.path).name: r for r in workspace.catalogue.photos(workspace.photo_ids().tolist())}
    assert {n: r.attributes["gender"].value for n, r in by_name.items() if "gender" in r.attributes} == {
        "0012_a.jpg": "female",
        "0012_b.jpg": "female",
        "0047_a.jpg": "male",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "{tmp}/missing.jpg"], "missing.jpg: sketch file not found"),
        (["search", "{photo}", "--where", "colour=red"], "unknown attribute 'colour'"),
        (["search", "{photo}", "--where", "gender=robot"], "unknown value 'robot' for attribute 'gender'"),
        (["attributes", "set", "12345", "gender=male"], "no photo with id 12345"),
        (["attributes", "import", "{tmp}/missing.csv"], "missing.csv: cannot read the attribute sheet"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, make_photos, capsys, argv, message):
    (photo,) = make_photos(1)
    (tmp_path / "data").mkdir()  # only import creates a data folder
    args = [a.format(tmp=tmp_path, photo=photo) for a in argv]
    code, out, err = cli(capsys, "--data-dir", tmp_path / "data", *args)
    assert code != 0
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_unusable_data_dir_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli(capsys, "--data-dir", blocker / "data", "stats")
    assert code != 0 and err.startswith("error: ") and str(blocker) in err


def test_verify_fails_on_a_damaged_index_and_rebuild_index_repairs_it(tmp_path, make_photos, capsys):
    from core.workspace import Workspace

    photos = make_photos(3)
    data = ["--data-dir", tmp_path / "data"]
    cli(capsys, *data, "import", photos[0].parent)
    with Workspace(tmp_path / "data") as workspace:
        workspace.indexes.path.write_bytes(b"garbage")  # damaged behind the open workspace's back
        report = workspace.verify()
        assert not report.ok and any("not a SketchSearch index" in p for p in report.problems)
    code, out, _ = cli(capsys, *data, "rebuild-index")
    assert code == 0 and "3 photo(s)" in out
    assert cli(capsys, *data, "verify")[0] == 0


def count_photos(database: Path) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_9_once_committed(process: subprocess.Popen, database: Path, photos: int) -> int:
    """``kill -9`` the writing ``process`` once ``database`` holds at least ``photos`` photos;
    returns how many it had committed."""
    deadline = time.monotonic() + 120
    while count_photos(database) < photos and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the writer finished before it could be killed; give it more work"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return count_photos(database)


def logged(data: Path, kind: str) -> list[dict]:
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        rows = db.execute("SELECT payload_json FROM audit_log WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    return [json.loads(payload) for (payload,) in rows]


@pytest.mark.slow
def test_kill_9_during_import_loses_nothing_and_logs_every_committed_batch(tmp_path, make_photos):
    photos = make_photos(160)
    data = tmp_path / "data"
    key = tmp_path / "audit.key"
    key.write_text("k" * 64)
    base = [sys.executable, "-m", "core.cli", "--data-dir", str(data)]
    command = base + ["import", str(photos[0].parent)]
    env = {**os.environ, "SKETCHSEARCH_DEVICE": "cpu", "SKETCHSEARCH_AUDIT_KEY": str(key)}  # entries sealed
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = kill_9_once_committed(process, data / "catalogue.sqlite3", 32)
    assert 0 < killed_at < 160
    # every committed batch has its entry, written with it; the run never got to its own
    assert sum(b["added"] for b in logged(data, "import batch")) == killed_at
    assert logged(data, "import") == []
    audit = subprocess.run(base + ["audit", "verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr

    finished = subprocess.run(command + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary["added"] + summary["unchanged"] == 160 and summary["failed"] == []
    assert summary["unchanged"] >= killed_at  # nothing committed before the kill is redone
    assert sum(b["added"] for b in logged(data, "import batch")) == 160
    assert [run["added"] for _, run in run_entries(data)] == [160 - killed_at]

    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        assert db.execute("SELECT count(*), count(DISTINCT sha256), count(DISTINCT path) FROM photos").fetchone() == (
            160,
            160,
            160,
        )
        assert db.execute("SELECT status FROM import_runs ORDER BY id").fetchall() == [("interrupted",), ("done",)]
    for check in (["verify"], ["audit", "verify"]):
        verify = subprocess.run(base + check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_import_summary_names_each_duplicate_and_the_file_it_copies(tmp_path, make_photos, untrained_model_dir):
    from tests.core.test_cli_reliability import run_cli

    photos = make_photos(3)
    copies = [photos[0].parent / "zz-copy-1.jpg", photos[0].parent / "zz-copy-2.jpg"]
    for copy in copies:
        copy.write_bytes(photos[0].read_bytes())
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    first = run_cli(*data, "import", photos[0].parent)
    lines = first.stdout.splitlines()
    assert first.returncode == 0 and lines[0].startswith("added 3, updated 0, unchanged 0, duplicates 2, failed 0 in ")
    assert lines[1:] == [f"  duplicate: {copy} (same content as {photos[0]})" for copy in copies]

    again = run_cli(*data, "import", photos[0].parent, "--json")
    summary = json.loads(again.stdout)
    assert (summary["added"], summary["unchanged"]) == (0, 3)
    assert summary["duplicates"] == [{"path": str(copy), "of": str(photos[0])} for copy in copies]
