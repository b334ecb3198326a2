"""The audit log against someone who holds the catalogue file: every casework table edited with
plain sqlite3 (an updated field, a deleted row, an inserted row), the triggers dropped first and
put back afterwards, so that each detection follows from the data and not from a trigger; then the
chain rewritten consistently from the middle, caught against a head printed earlier and against a
keyed seal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.casework import audit
from core.casework.records import ReviewMark
from core.casework.store import CaseworkStore
from core.casework.tables import append_only_triggers
from core.catalogue.catalogue import Catalogue
from core.common.errors import CaseworkError
from tests.core.test_casework import record
from tests.core.test_catalogue import new_photo

KEY = b"k" * 32


def casework(tmp_path: Path, key: bytes | None = None) -> CaseworkStore:
    """Two cases (one edited, closed and reopened), three searches, a revision and four reviews."""
    catalogue = Catalogue(tmp_path / "data")
    catalogue.register_model("ab" * 32, "m", 4, {})
    catalogue.add_photos([new_photo(i) for i in range(1, 6)], "ab" * 32)
    store = CaseworkStore(catalogue, audit_key=key)
    first_case = store.new_case("C-1", "robbery", "ana")
    second_case = store.new_case("C-2", "arson", "ben")
    store.update_case("C-1", "ana", title="armed robbery", notes="two witnesses")
    first, _ = record(store, first_case.id)
    second, _ = record(store, second_case.id, (2, 1, 4))
    record(store, revision_of=first, photo_ids=(3, 1))
    record(store, None, (5,))
    store.review(first, 1, ReviewMark.POSSIBLE, "ana", "tattoo matches")
    store.review(first, 2, ReviewMark.EXCLUDED, "ana", "too tall")
    store.review(second, 3, ReviewMark.POSSIBLE, "ben")
    store.review(second, 3, ReviewMark.CLEAR, "ben", "withdrawn")
    store.set_case_state("C-2", True, "ben")
    store.set_case_state("C-2", False, "ben")
    assert store.verify_audit().ok
    return store


def tamper(path: Path, *statements: str) -> None:
    """Drop every trigger, run ``statements``, and put the triggers back as SketchSearch writes them."""
    db = sqlite3.connect(path, isolation_level=None)
    names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in names:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("PRAGMA ignore_check_constraints = ON")
    for statement in statements:
        db.execute(statement)
    db.execute("PRAGMA ignore_check_constraints = OFF")
    for statement in append_only_triggers():
        db.execute(statement)
    from core.catalogue.orm import attribute_change_triggers

    for statement in attribute_change_triggers():
        db.execute(statement)
    db.close()


def copy_row(table: str, key: str, changes: str) -> str:
    """An INSERT that copies the row with the smallest key under another key (``changes``: the
    SELECT list with the new key in place)."""
    return f"INSERT INTO {table} SELECT {changes} FROM {table} ORDER BY {key} LIMIT 1"


MATRIX = {
    ("cases", "update"): "UPDATE cases SET title = 'burglary' WHERE number = 'C-1'",
    ("cases", "delete"): "DELETE FROM cases WHERE number = 'C-2'",
    ("cases", "insert"): copy_row("cases", "id", "99, 'C-9', title, operator, notes, opened_at, closed_at"),
    ("searches", "update"): "UPDATE searches SET query_name = 'other.png' WHERE id = 1",
    ("searches", "delete"): "DELETE FROM searches WHERE id = 3",
    ("searches", "insert"): copy_row(
        "searches",
        "id",
        "99, case_id, query_kind, query_name, query_sha256, query_png, query_strokes, query_file, operator, "
        "app_version, created_at",
    ),
    ("search_revisions", "update"): "UPDATE search_revisions SET top_k = 50 WHERE id = 2",
    ("search_revisions", "delete"): "DELETE FROM search_revisions WHERE id = 4",
    ("search_revisions", "insert"): copy_row(
        "search_revisions",
        "id",
        "99, search_id, 9, model_name, embedding_key, gallery_photos, gallery_last_import, filters_json, top_k, "
        "started_at, finished_at, operator, audit_seq",
    ),
    ("search_results", "update"): "UPDATE search_results SET photo_id = 5 WHERE revision_id = 1 AND rank = 3",
    ("search_results", "delete"): "DELETE FROM search_results WHERE revision_id = 2 AND rank = 3",
    ("search_results", "insert"): copy_row(
        "search_results", "revision_id", "revision_id, 9, photo_id, photo_sha256, score, thumbnail"
    ),
    ("reviews", "update"): "UPDATE reviews SET operator = 'eve' WHERE id = 1",
    ("reviews", "delete"): "DELETE FROM reviews WHERE id = 4",
    ("reviews", "insert"): copy_row(
        "reviews", "id", "99, search_id, photo_id, photo_sha256, rank, mark, note, operator, at, audit_seq"
    ),
    ("audit_log", "update"): "UPDATE audit_log SET operator = 'eve' WHERE seq = 3",
    ("audit_log", "delete"): "DELETE FROM audit_log WHERE seq = 4",
    ("audit_log", "insert"): copy_row(
        "audit_log",
        "seq DESC",
        "seq + 1, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, entry_sha256",
    ),
    ("audit_head", "update"): "UPDATE audit_head SET seq = seq - 1",
    ("audit_head", "delete"): "DELETE FROM audit_head",
    (
        "audit_head",
        "insert",
    ): "INSERT INTO audit_head (id, seq, entry_sha256) SELECT 2, seq, entry_sha256 FROM audit_head",
    ("audit_seals", "update"): "UPDATE audit_seals SET mac = substr(mac, 2) || '0' WHERE seq = 5",
    ("audit_seals", "delete"): "DELETE FROM audit_seals WHERE seq = 5",
    ("audit_seals", "insert"): "INSERT INTO audit_seals (seq, mac) SELECT seq + 1000, mac FROM audit_seals LIMIT 1",
}


@pytest.mark.parametrize(("table", "change"), sorted(MATRIX))
def test_every_change_to_every_casework_table_is_detected(tmp_path, table, change):
    key = KEY if table == "audit_seals" else None
    store = casework(tmp_path, key)
    tamper(store.catalogue.path, MATRIX[(table, change)])
    check = store.verify_audit()
    assert not check.ok, f"{change} on {table} went unnoticed"
    assert not any(p.startswith("trigger ") for p in check.problems)  # found from the data, not a trigger
    store.catalogue.close()


@pytest.mark.parametrize("column", ["number", "title", "operator", "notes", "closed_at"])
def test_a_case_renamed_retitled_reassigned_or_closed_in_sqlite_is_detected(tmp_path, column):
    store = casework(tmp_path)
    value = "'2026-01-01 00:00:00.000000'" if column == "closed_at" else "'forged'"
    tamper(store.catalogue.path, f"UPDATE cases SET {column} = {value} WHERE number = 'C-1'")
    check = store.verify_audit()
    assert not check.ok and "case row 1" in check.problem and "edited" in check.problem


def test_a_withdrawn_lead_cannot_be_brought_back_by_deleting_the_withdrawal(tmp_path):
    store = casework(tmp_path)
    assert 4 not in store.current_marks(2)  # the possible lead (photo 4) on search 2 was withdrawn
    tamper(store.catalogue.path, "DELETE FROM reviews WHERE id = 4")
    assert store.current_marks(2)[4].mark == ReviewMark.POSSIBLE  # what the file now shows...
    check = store.verify_audit()  # ...and what verify says of it
    assert not check.ok and "review 4" in check.problem and "deleted" in check.problem


@pytest.mark.parametrize("column", ["operator", "at", "rank", "note"])
def test_a_review_edited_in_any_field_is_detected(tmp_path, column):
    store = casework(tmp_path)
    value = "7" if column == "rank" else "'2020-01-01 00:00:00.000000'" if column == "at" else "'forged'"
    tamper(store.catalogue.path, f"UPDATE reviews SET {column} = {value} WHERE id = 2")
    check = store.verify_audit()
    assert not check.ok and "review 2" in check.problem


@pytest.mark.parametrize(
    "statements",
    [
        # a search deleted with its revisions and results
        (
            "DELETE FROM search_results WHERE revision_id IN (SELECT id FROM search_revisions WHERE search_id = 2)",
            "DELETE FROM search_revisions WHERE search_id = 2",
            "DELETE FROM searches WHERE id = 2",
        ),
        ("UPDATE searches SET case_id = 2 WHERE id = 1",),  # moved to another case
        ("UPDATE searches SET query_png = x'89504e47' WHERE id = 1",),  # the query sketch swapped
        ("UPDATE searches SET query_file = x'00' WHERE id = 1",),
        ("UPDATE searches SET query_sha256 = '" + "0" * 64 + "' WHERE id = 1",),
        ("UPDATE search_revisions SET filters_json = '{}' WHERE id = 1",),
        ("UPDATE search_revisions SET model_name = 'other' WHERE id = 1",),
        ("UPDATE search_revisions SET operator = 'eve' WHERE id = 1",),
    ],
)
def test_a_search_deleted_moved_or_with_its_query_or_revision_changed_is_detected(tmp_path, statements):
    store = casework(tmp_path)
    tamper(store.catalogue.path, *statements)
    assert not store.verify_audit().ok


def test_missing_triggers_are_named(tmp_path):
    store = casework(tmp_path)
    db = sqlite3.connect(store.catalogue.path, isolation_level=None)
    db.execute("DROP TRIGGER reviews_no_delete")
    db.execute("DROP TRIGGER cases_no_delete")
    db.close()
    check = store.verify_audit()
    assert not check.ok
    assert set(check.problems) == {
        "trigger reviews_no_delete is missing: it was dropped",
        "trigger cases_no_delete is missing: it was dropped",
    }


def rewrite_chain_from(path: Path, seq: int, payload_edit) -> None:
    """What someone holding the file (and not the key) can do: edit entry ``seq``'s payload and the
    row it binds, then recompute every hash from there on and the head, consistently."""
    db = sqlite3.connect(path, isolation_level=None)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    rows = db.execute(
        "SELECT seq, at, kind, operator, case_id, payload_json, prev_sha256 FROM audit_log WHERE seq >= ? ORDER BY seq",
        (seq,),
    ).fetchall()
    prev = rows[0][6]
    for entry_seq, at, kind, operator, case_id, payload_json, _ in rows:
        if entry_seq == seq:
            payload_json = audit.canonical_json(payload_edit(db, __import__("json").loads(payload_json)))
        content = audit.content_hash(at, kind, operator, case_id, payload_json)
        entry = audit.chain_hash(prev, content)
        db.execute(
            "UPDATE audit_log SET payload_json = ?, content_sha256 = ?, prev_sha256 = ?, entry_sha256 = ? "
            "WHERE seq = ?",
            (payload_json, content, prev, entry, entry_seq),
        )
        prev = entry
    db.execute("UPDATE audit_head SET entry_sha256 = ?", (prev,))
    for statement in append_only_triggers():
        db.execute(statement)
    from core.catalogue.orm import attribute_change_triggers

    for statement in attribute_change_triggers():
        db.execute(statement)
    db.close()


def edit_first_review_note(db, payload: dict) -> dict:
    """Change the note of review 1 in its row, and in the entry that binds it, consistently."""
    from sqlalchemy import create_engine

    from core.casework import binding

    db.execute("UPDATE reviews SET note = 'no tattoo' WHERE id = 1")
    engine = create_engine(f"sqlite:///{db.execute('PRAGMA database_list').fetchone()[2]}")
    db.execute("SELECT 1")  # the edit is committed (autocommit): the other connection sees it
    with engine.connect() as connection:
        payload["bound_rows"] = {"reviews": binding.digests(connection, "reviews", [1])}
    engine.dispose()
    return payload | {"note": "no tattoo"}


def test_a_consistent_rewrite_is_caught_against_an_earlier_head_and_a_key(tmp_path):
    store = casework(tmp_path, KEY)
    printed = store.verify_audit()  # as a report or an export prints it
    earlier_head = (printed.entries, printed.head_sha256)
    review_entry = next(e.seq for e in store.audit_entries() if e.kind == "review")
    rewrite_chain_from(store.catalogue.path, review_entry, edit_first_review_note)
    assert store.reviews(1)[0].note == "no tattoo"

    unkeyed = CaseworkStore(store.catalogue)
    assert unkeyed.verify_audit().ok  # the file alone holds no evidence of a consistent rewrite...
    check = unkeyed.verify_audit(against=earlier_head)  # ...the head printed earlier does
    assert not check.ok and f"entry {printed.entries} is not the given head" in check.problem
    check = unkeyed.verify_audit(against=(None, printed.head_sha256))
    assert not check.ok and "not in the log" in check.problem
    check = store.verify_audit()  # and so does the key
    assert not check.ok and check.first_bad == review_entry and "seal does not match" in check.problem


def test_a_cut_back_tail_is_caught_against_an_earlier_head_and_by_its_rows(tmp_path):
    store = casework(tmp_path)
    printed = store.verify_audit()
    tamper(
        store.catalogue.path,
        f"DELETE FROM audit_log WHERE seq > {printed.entries - 3}",
        f"UPDATE audit_head SET seq = {printed.entries - 3}, entry_sha256 = "
        f"(SELECT entry_sha256 FROM audit_log WHERE seq = {printed.entries - 3})",
    )
    check = store.verify_audit(against=(printed.entries, printed.head_sha256))
    assert not check.ok and "cut back" in check.problem
    # without the earlier head: the review the cut entries bound is now in no entry
    check = store.verify_audit()
    assert not check.ok and "review 4 is in no audit entry: it was added behind the log" in check.problems


def test_the_log_still_extends_an_earlier_head_after_more_work(tmp_path):
    store = casework(tmp_path, KEY)
    printed = store.verify_audit()
    record(store, None, (1, 2))
    assert store.verify_audit(against=(printed.entries, printed.head_sha256)).ok
    assert store.verify_audit(against=(None, printed.head_sha256)).ok


def test_entries_written_without_the_key_fail_a_keyed_check(tmp_path):
    store = casework(tmp_path, KEY)
    CaseworkStore(store.catalogue).new_case("C-3", "fraud", "eve")  # a writer without the key
    check = store.verify_audit()
    assert not check.ok and "no seal" in check.problem
    check = CaseworkStore(store.catalogue, audit_key=b"x" * 32).verify_audit()
    assert not check.ok and "seal does not match" in check.problem and check.first_bad == 1


def test_a_closed_case_accepts_no_review(tmp_path):
    store = casework(tmp_path)
    store.set_case_state("C-1", True, "ana")
    with pytest.raises(CaseworkError, match="case is closed"):
        store.review(1, 3, ReviewMark.POSSIBLE, "ana")
    with pytest.raises(CaseworkError, match="case is closed"):
        record(store, revision_of=1, photo_ids=(1,))
    assert [r.id for r in [store.search(1)]] and len(store.reviews(1)) == 2


def test_a_version_6_file_binds_its_casework_once_on_upgrade(tmp_path):
    from tests.core.test_catalogue import frozen_catalogue

    folder = frozen_catalogue(6, tmp_path)
    with sqlite3.connect(folder / Catalogue.FILE_NAME) as db:
        before = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    catalogue = Catalogue(folder)
    store = CaseworkStore(catalogue)
    bound = [e for e in store.audit_entries() if e.kind == "casework bound"]
    assert len(bound) == 1 and bound[0].seq == before + 1
    assert set(bound[0].payload["bound_rows"]) == {"cases", "searches", "search_revisions", "search_results", "reviews"}
    assert store.verify_audit().ok
    catalogue.close()
    catalogue = Catalogue(folder)  # a second opening binds nothing more
    store = CaseworkStore(catalogue)
    assert [e.kind for e in store.audit_entries()].count("casework bound") == 1
    tamper(catalogue.path, "UPDATE reviews SET note = 'no scar'")  # rows of before the upgrade are bound too
    assert "review 1 differs from what entry 6 recorded: it was edited" in store.verify_audit().problems
    catalogue.close()


IMPORT_RUN_CHANGES = {
    "roots": """UPDATE import_runs SET roots = '["/elsewhere"]' WHERE id = 1""",
    "status": "UPDATE import_runs SET status = 'cancelled' WHERE id = 1",
    "counts": "UPDATE import_runs SET added = added - 1, failed = failed + 1 WHERE id = 1",
    "started_at": "UPDATE import_runs SET started_at = '2020-01-01 00:00:00.000000' WHERE id = 1",
    "deleted": "DELETE FROM import_runs WHERE id = 1",
}


@pytest.mark.parametrize("change", sorted(IMPORT_RUN_CHANGES))
def test_an_import_runs_record_edited_or_deleted_in_sqlite_is_detected(open_workspace, make_photos, change):
    photos = make_photos(3)
    workspace = open_workspace()
    for _ in range(2):  # the second run is left as it was
        workspace.import_paths([photos[0].parent])
    first_entry = next(e.seq for e in workspace.casework.audit_entries() if e.kind == "import")
    assert workspace.casework.verify_audit().ok
    tamper(workspace.catalogue.path, IMPORT_RUN_CHANGES[change])
    check = workspace.casework.verify_audit()
    done = "is missing: it was deleted" if change == "deleted" else "differs from what entry"
    assert not check.ok and check.first_bad == first_entry
    assert len(check.problems) == 1 and check.problems[0].startswith("import run 1") and done in check.problems[0]


def test_an_import_run_that_never_ended_has_no_entry_and_verifies(tmp_path):
    store = casework(tmp_path)
    store.catalogue.start_import([tmp_path / "gallery"])  # its process killed before the run's end
    assert store.verify_audit().ok
    store.catalogue.close()
