"""Casework in core: the schema step on a frozen catalogue, the hash-chained audit log against
direct tampering, search records, reviews, replay, and kill -9 in the middle of recording."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.casework.records import QueryKind, ReviewMark
from core.casework.store import CaseworkStore
from core.casework.tables import APPEND_ONLY_TABLES
from core.catalogue.catalogue import Catalogue
from core.catalogue.migrations import LATEST_VERSION
from core.common.errors import CaseworkError
from core.common.operator import os_account
from tests.core.test_catalogue import columns, frozen_catalogue, new_photo
from tests.core.test_photo_audit import import_run

ROOT = Path(__file__).resolve().parents[2]


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def drop_triggers(db_path: Path) -> sqlite3.Connection:
    """What someone editing the file by hand would do first: the triggers refuse any change."""
    db = sqlite3.connect(db_path, isolation_level=None)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    return db


def test_version_2_file_gains_the_casework_tables_with_nothing_lost(tmp_path):
    folder = frozen_catalogue(2, tmp_path)
    db_path = folder / Catalogue.FILE_NAME
    with sqlite3.connect(db_path) as db:
        before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in columns(db_path)}
    catalogue = Catalogue(folder)
    catalogue.close()
    with sqlite3.connect(db_path) as db:
        after = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in before}
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    # later versions may add columns (at the end of a row); every value that was there is kept
    kept = {t: [row[: len(old)] for row, old in zip(after[t], before[t], strict=True)] for t in before}
    assert kept == before and sum(len(rows) for rows in before.values()) > 0
    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert columns(db_path) == columns(fresh / Catalogue.FILE_NAME)
    with sqlite3.connect(fresh / Catalogue.FILE_NAME) as db:
        assert triggers == {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {f"{t}_no_update" for t in APPEND_ONLY_TABLES} <= triggers

    # the migrated file records casework
    catalogue = Catalogue(folder)
    store = CaseworkStore(catalogue)
    case = store.new_case("2026-0001", "burglary", "ana")
    assert case.is_open and store.verify_audit().ok
    catalogue.close()


@pytest.fixture
def store(tmp_path):
    catalogue = Catalogue(tmp_path / "data")
    catalogue.register_model("ab" * 32, "m", 4, {})
    catalogue.add_photos([new_photo(i) for i in range(1, 6)], "ab" * 32)
    yield CaseworkStore(catalogue)
    catalogue.close()


def record(store, case_id=None, photo_ids=(1, 2, 3), revision_of=None):
    from core.casework.query import drawn_query
    from core.common.types import Candidate

    pixels = np.full((32, 16, 3), 255, np.uint8)
    candidates = [Candidate(r, pid, f"/p/{pid}", 0.9 - r / 10, {}) for r, pid in enumerate(photo_ids, start=1)]
    return store.record_search(
        drawn_query(pixels, '{"strokes": []}'),
        case_id=case_id,
        operator="ana",
        app_version="test",
        model_name="m",
        embedding_key="ab" * 32,
        filters={"gender": "male"},
        min_confidence=0.5,
        top_k=3,
        candidates=candidates,
        started_at=now(),
        finished_at=now(),
        revision_of=revision_of,
    )


def fill_log(store) -> Path:
    """Six entries: case opened, two searches, a revision, two reviews."""
    case = store.new_case("C-1", "robbery", "ana")
    first, _ = record(store, case.id)
    record(store, case.id, (2, 1))
    record(store, revision_of=first, photo_ids=(3, 1))
    store.review(first, 1, ReviewMark.POSSIBLE, "ana", "tattoo matches")
    store.review(first, 2, ReviewMark.EXCLUDED, "ana")
    assert store.verify_audit().ok and store.verify_audit().entries == 6
    return store.catalogue.path


def test_records_revisions_and_reviews_read_back(store):
    case = store.new_case("C-7", "fraud", "ana", notes="CCTV at the bank")
    search_id, revision = record(store, case.id)
    assert revision == 1
    assert record(store, revision_of=search_id, photo_ids=(4, 5))[1] == 2
    recorded = store.search(search_id)
    assert recorded.query_kind == QueryKind.STROKES and recorded.case_id == case.id
    assert [r.revision for r in recorded.revisions] == [1, 2]
    assert [c.photo_id for c in recorded.latest.candidates] == [4, 5]
    assert recorded.latest.filters == {"gender": "male"} and recorded.latest.min_confidence == 0.5
    assert recorded.revisions[0].gallery.photos == 5
    assert recorded.latest.candidates[0].photo_sha256 == f"{4:064x}" and recorded.latest.candidates[0].thumbnail

    store.review(search_id, 1, ReviewMark.EXCLUDED, "ana", "wrong height")
    store.review(search_id, 2, ReviewMark.POSSIBLE, "bo")
    store.review(search_id, 2, ReviewMark.CLEAR, "bo")  # withdrawn: back to not reviewed
    marks = store.current_marks(search_id)
    assert {pid: r.mark for pid, r in marks.items()} == {4: ReviewMark.EXCLUDED}
    assert marks[4].note == "wrong height" and len(store.reviews(search_id)) == 3
    with pytest.raises(CaseworkError, match="no candidate at rank 9"):
        store.review(search_id, 9, ReviewMark.POSSIBLE, "ana")
    assert store.case("C-7").searches == 1

    store.set_case_state("C-7", closed=True, operator="ana")
    with pytest.raises(CaseworkError, match="closed"):
        record(store, case.id)
    assert store.set_case_state("C-7", closed=False, operator="ana").is_open
    kinds = [e.kind for e in store.audit_entries()]
    assert kinds == ["case opened", "search", "search revision", "review", "review", "review", "case closed",
                     "case reopened"]  # fmt: skip


def test_records_are_append_only(store):
    fill_log(store)
    db = sqlite3.connect(store.catalogue.path)
    for statement in (
        "UPDATE audit_log SET operator = 'eve'",
        "DELETE FROM audit_log WHERE seq = 2",
        "UPDATE search_results SET score = 1",
        "DELETE FROM reviews",
        "DELETE FROM searches",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)
    db.close()


def test_audit_verify_names_an_altered_entry(store):
    db = drop_triggers(fill_log(store))
    db.execute("UPDATE audit_log SET payload_json = replace(payload_json, 'tattoo', 'scar') WHERE seq = 5")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 5 and "entry 5 (review) was altered" in check.problem


def test_audit_verify_names_a_removed_entry(store):
    db = drop_triggers(fill_log(store))
    db.execute("DELETE FROM audit_log WHERE seq = 3")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 3 and "entry 3 is missing" in check.problem


def test_audit_verify_names_a_removed_entry_even_when_renumbered(store):
    db = drop_triggers(fill_log(store))
    db.execute("DELETE FROM audit_log WHERE seq = 3")
    db.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 3 and "does not follow entry 2" in check.problem


def test_audit_verify_names_reordered_entries(store):
    db = drop_triggers(fill_log(store))
    db.execute("UPDATE audit_log SET seq = -1 WHERE seq = 2")
    db.execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
    db.execute("UPDATE audit_log SET seq = 3 WHERE seq = -1")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 2 and "reordered" in check.problem


def test_audit_verify_notices_the_newest_entry_removed(store):
    db = drop_triggers(fill_log(store))
    db.execute("DELETE FROM audit_log WHERE seq = 6")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 6 and "removed" in check.problem


def test_audit_verify_notices_a_record_edited_behind_the_log(store):
    db = drop_triggers(fill_log(store))
    db.execute("UPDATE search_results SET score = 0.99 WHERE rank = 2")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 2 and "differ" in check.problem
    db.execute("UPDATE search_results SET score = 0.9 - 2 / 10.0 WHERE rank = 2")
    check = store.verify_audit()  # the records agree again; the dropped triggers are still named
    assert not check.ok and all(p.startswith("trigger ") and p.endswith("dropped") for p in check.problems)
    db.execute("UPDATE reviews SET mark = 'excluded' WHERE mark = 'possible'")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 5


RECORDER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.core.test_casework import record
from core.casework.store import CaseworkStore
from core.catalogue.catalogue import Catalogue
store = CaseworkStore(Catalogue(Path({data!r})))
print("ready", flush=True)
while True:
    record(store, photo_ids=range(1, 41))
"""


@pytest.mark.slow
def test_kill_9_while_recording_leaves_no_half_record_and_a_valid_chain(tmp_path):
    data = tmp_path / "data"
    catalogue = Catalogue(data)
    big = [new_photo(i) for i in range(1, 41)]
    # large thumbnails, so that each record is a long write that the kill is likely to cut
    rng = np.random.default_rng(0)
    big = [p.__class__(**{**p.__dict__, "thumbnail": rng.bytes(200_000)}) for p in big]
    catalogue.register_model("ab" * 32, "m", 4, {})
    catalogue.add_photos(big, "ab" * 32)
    catalogue.close()
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER.format(root=str(ROOT), data=str(data))],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(data / Catalogue.FILE_NAME) as db:
            if db.execute("SELECT count(*) FROM searches").fetchone()[0] >= 5:
                break
        time.sleep(0.05)
    time.sleep(0.037)  # somewhere inside a record
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    catalogue = Catalogue(data)
    store = CaseworkStore(catalogue)
    check = store.verify_audit()
    assert check.ok, check.problem
    with sqlite3.connect(data / Catalogue.FILE_NAME) as db:
        searches = db.execute("SELECT count(*) FROM searches").fetchone()[0]
        revisions = db.execute("SELECT count(*) FROM search_revisions").fetchone()[0]
        results = db.execute("SELECT count(*) FROM search_results").fetchone()[0]
        entries = db.execute("SELECT count(*) FROM audit_log WHERE kind = 'search'").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert searches >= 5 and searches == revisions == entries and results == 40 * searches
    record(store, photo_ids=(1, 2))  # and recording goes on after it
    assert store.verify_audit().ok
    catalogue.close()


def test_gallery_and_model_changes_are_logged_by_the_workspace(open_workspace, make_photos, other_model, tmp_path):
    photos = make_photos(4)
    workspace = open_workspace()
    workspace.desk.operator = "ana"
    workspace.import_paths([photos[0].parent])
    workspace.gallery.set_attribute(2, "gender", "female")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"filename,hair\n{photos[0].name},long\n")
    workspace.gallery.import_attribute_sheet(sheet)
    workspace.gallery.remove_folder(str(photos[0].parent))
    workspace.close()
    upgraded = open_workspace(model=other_model)  # the same gallery opened with another model
    upgraded.close()
    again = open_workspace(model=other_model)  # and again with it: no change, nothing logged
    entries = again.casework.audit_entries()
    assert [e.kind for e in entries] == [
        "model", "import batch", "import", "attribute correction", "attribute sheet", "remove folder", "model"
    ]  # fmt: skip
    by_kind = {e.kind: e for e in entries}
    assert import_run(again.data_dir, by_kind["import"].payload["import_id"])["added"] == 4
    assert by_kind["import"].operator == "ana"
    assert by_kind["attribute correction"].payload == {
        "photo_id": 2, "photo_sha256": by_kind["remove folder"].payload["photos"][1][1],
        "values": {"gender": "female"}, "source": "manual", "os_account": os_account(),
    }  # fmt: skip
    assert all(e.payload["os_account"] == os_account() for e in entries)  # what the OS said, beside the operator
    assert [p[0] for p in by_kind["remove folder"].payload["photos"]] == [1, 2, 3, 4]
    assert entries[-1].payload["previous"] == entries[0].payload["embedding_key"]
    assert entries[-1].payload["embedding_key"] == other_model.embedding_key
    assert again.casework.verify_audit().ok


def test_a_review_names_the_photo_it_expects(store):
    search_id, _ = record(store, photo_ids=(3, 1, 2))
    with pytest.raises(CaseworkError, match="rank 1 is photo #3"):
        store.review(search_id, 1, ReviewMark.EXCLUDED, "ana", photo_id=1)
    assert store.reviews(search_id) == [] and store.verify_audit().entries == 1
    assert store.review(search_id, 2, ReviewMark.EXCLUDED, "ana", photo_id=1).photo_id == 1


def test_weak_result_warning_follows_the_measured_thresholds():
    from core.casework.weak import LOW_BEST_SCORE, LOW_SEPARATION, weak_result_reasons, weak_result_warning

    strong = [LOW_BEST_SCORE + 0.2, 0.3, 0.25, 0.2, LOW_BEST_SCORE + 0.2 - LOW_SEPARATION - 0.05]
    assert weak_result_reasons(strong) == [] and weak_result_warning(strong) == ""
    low = [LOW_BEST_SCORE - 0.01] + [LOW_BEST_SCORE - 0.2] * 4
    assert len(weak_result_reasons(low)) == 1 and "best score" in weak_result_reasons(low)[0]
    crowded = [0.5, 0.49, 0.48, 0.47, 0.5 - LOW_SEPARATION + 0.01]
    assert "not separated" in weak_result_warning(crowded) and "PKU-Sketch validation" in weak_result_warning(crowded)
    assert weak_result_reasons([]) == []
