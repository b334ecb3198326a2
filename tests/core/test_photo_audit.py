"""Every transaction that adds, replaces, relocates or forgets photos carries its audit entry: a
folder import's batches, the photos it replaces or follows to a new path, a prune and a folder's
removal. What a transaction commits and its entry are committed together or not at all (the kill
-9 of an import is in tests/core/test_cli.py)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from core.casework.audit import GENESIS
from core.casework.logged_paths import path_from_b64
from core.casework.store import CaseworkStore
from core.catalogue.catalogue import Catalogue
from core.workspace import Workspace
from tests.conftest import draw_person
from tests.core.test_catalogue import new_photo


def import_run(data_dir: Path, import_id: int) -> dict:
    """A run's record in the catalogue's import log, its roots read from their JSON."""
    with sqlite3.connect(data_dir / Catalogue.FILE_NAME) as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM import_runs WHERE id = ?", (import_id,)).fetchone())
    return row | {"roots": json.loads(row["roots"])}


def run_entries(data_dir: Path, kind: str = "import") -> list[tuple[dict, dict]]:
    """(payload, the run it names) of each entry that ended an import run, oldest first."""
    with sqlite3.connect(data_dir / Catalogue.FILE_NAME) as db:
        rows = db.execute("SELECT payload_json FROM audit_log WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    payloads = [json.loads(payload) for (payload,) in rows]
    return [(payload, import_run(data_dir, payload["import_id"])) for payload in payloads]


def batches(workspace: Workspace, import_id: int | None = None) -> list[dict]:
    entries = [e.payload for e in workspace.casework.audit_entries() if e.kind == "import batch"]
    return [e for e in entries if import_id is None or e["import_id"] == import_id]


def test_each_committed_transaction_of_an_import_has_its_entry(tmp_path, make_photos, inference_model):
    photos = make_photos(6)
    key = tmp_path / "audit.key"
    key.write_text("k" * 64)
    with Workspace(tmp_path / "data", model=inference_model, audit_key_file=key) as workspace:
        first = workspace.import_paths([photos[0].parent], batch_size=4)
        assert first.added == 6
        assert [(b["added"], b["updated"], b["relocated"], b["removed"], b["ids"]) for b in batches(workspace)] == [
            (4, 0, 0, 0, [1, 4]),
            (2, 0, 0, 0, [5, 6]),
        ]
        assert all(b["import_id"] == 1 for b in batches(workspace))

        moved = photos[0].with_name("moved.jpg")
        photos[0].rename(moved)  # followed to its new path
        os.utime(photos[2], ns=(10**18, 10**18))  # touched: the same photo, its new time recorded
        draw_person(100).save(photos[1], quality=90)  # other content at a catalogued path: replaced
        make_photos(1, start=200)  # new
        second = workspace.import_paths([photos[0].parent], batch_size=4)
        assert (second.added, second.updated, second.unchanged) == (1, 2, 4)

        logged = batches(workspace, import_id=2)
        relocated = sorted(
            (b["photo"], path_from_b64(b.get("previous_path_b64", b["path_b64"])), path_from_b64(b["path_b64"]))
            for b in logged
            if b["relocated"]
        )
        assert relocated == [(1, str(photos[0]), str(moved)), (3, str(photos[2]), str(photos[2]))]
        assert [b["previous_path"] for b in logged if "previous_path" in b] == [str(photos[0])]  # only when it moved
        removed = [(b["photo"], b["sha256"], b["path"]) for b in logged if b["removed"]]
        assert len(removed) == 1 and removed[0][0] == 2 and removed[0][2] == str(photos[1])
        assert len(removed[0][1]) == 64
        committed = [(b["added"], b["updated"], b["ids"]) for b in logged if b["added"] or b["updated"]]
        assert committed == [(1, 1, [7, 8])]  # one batch: the new photo and the replacing one
        assert all(sum(b[f] for f in ("added", "updated", "relocated", "removed")) >= 1 for b in logged)

        # what the entries say is what the catalogue holds, and the runs' own entries are kept
        every = batches(workspace)
        assert workspace.catalogue.count_photos() == sum(b["added"] + b["updated"] - b["removed"] for b in every) == 7
        runs = run_entries(tmp_path / "data")
        assert [(r["id"], r["added"], r["updated"], r["status"]) for _, r in runs] == [
            (1, 6, 0, "done"),
            (2, 1, 2, "done"),
        ]
        assert [r["roots"] for _, r in runs] == [[str(photos[0].parent)]] * 2
        # each names its run and binds the run's record, copying none of its fields; it adds only what
        # the record has no column for (the duplicates found) and the OS account every entry holds
        assert [sorted(payload) for payload, _ in runs] == [
            ["duplicates", "import_id", "import_run_sha256", "os_account", "photos_after"]
        ] * 2
        assert [payload["photos_after"] for payload, _ in runs] == [6, 7]
        check = workspace.casework.verify_audit()
        assert check.ok and check.entries == len(workspace.casework.audit_entries()), check.problem


def _photo_ids(workspace: Workspace) -> list[int]:
    return sorted(record.id for record in workspace.catalogue.photos(range(1, 100)))


def _forget(workspace: Workspace, kind: str, folder) -> int:
    return workspace.gallery.prune_missing() if kind == "prune" else workspace.gallery.remove_folder(str(folder))


@pytest.mark.parametrize("kind", ["prune", "remove folder"])
def test_photos_forgotten_and_their_entry_are_one_transaction(tmp_path, make_photos, open_workspace, kind):
    photos = make_photos(3)
    workspaces = {}
    for name in ("kept", "damaged"):
        workspace = workspaces[name] = open_workspace(tmp_path / name)
        workspace.import_paths([photos[0].parent])
    photos[0].unlink()  # the next import flags it missing: prune forgets it
    for workspace in workspaces.values():
        workspace.import_paths([photos[0].parent])
    gone = [1] if kind == "prune" else [1, 2, 3]

    workspace = workspaces["kept"]
    assert _forget(workspace, kind, photos[0].parent) == len(gone)
    assert _photo_ids(workspace) == sorted({1, 2, 3} - set(gone))
    entry = workspace.casework.audit_entries()[-1]
    assert entry.kind == kind and sorted(p[0] for p in entry.payload["photos"]) == gone
    assert workspace.casework.verify_audit().ok

    # a log its next entry cannot join (a row written at that entry's number behind the chain's
    # back): the entry fails, and the photos are not forgotten either
    workspace = workspaces["damaged"]
    seq = workspace.casework.audit_head()[0] + 1
    with sqlite3.connect(tmp_path / "damaged" / Catalogue.FILE_NAME) as db:
        db.execute(
            "INSERT INTO audit_log (seq, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, "
            "entry_sha256) VALUES (?, 'now', 'stray', 'x', NULL, '{}', ?, ?, ?)",
            (seq, GENESIS, GENESIS, GENESIS),
        )
    with pytest.raises(Exception, match="UNIQUE constraint failed: audit_log.seq"):
        _forget(workspace, kind, photos[0].parent)
    assert _photo_ids(workspace) == [1, 2, 3]
    assert sorted(workspace.index.ids().tolist()) == [1, 2, 3]
    assert [e.kind for e in workspace.casework.audit_entries()][-1] == "stray"


@pytest.fixture
def catalogue(tmp_path):
    catalogue = Catalogue(tmp_path / "data")
    catalogue.register_model("ab" * 32, "m", 4, {})
    yield catalogue
    catalogue.close()


def _unencodable(store: CaseworkStore):
    def record(connection, ids) -> None:
        store.append_entry(connection, "import batch", "ana", {"ids": ids, "score": float("nan")})  # no JSON for NaN

    return record


@pytest.mark.parametrize("write", ["add", "relocate", "delete"])
def test_a_photo_write_whose_entry_fails_is_not_committed(catalogue, write):
    store = CaseworkStore(catalogue)
    catalogue.add_photos([new_photo(1)], "ab" * 32)
    before = catalogue.photos([1, 2])
    with pytest.raises(ValueError, match="JSON"):
        if write == "add":
            catalogue.add_photos([new_photo(2)], "ab" * 32, record=_unencodable(store))
        elif write == "relocate":
            catalogue.relocate_photo(1, "/elsewhere/1.jpg", 101, 5, "/elsewhere", record=_unencodable(store))
        else:
            catalogue.delete_photos([1], record=_unencodable(store))
    assert catalogue.photos([1, 2]) == before and store.audit_entries() == []
    assert catalogue.embeddings("ab" * 32, 4)[0].tolist() == [1]

    # and with an entry that can be written, both are committed
    def record(connection, ids) -> None:
        store.append_entry(connection, "import batch", "ana", {"ids": ids})

    if write == "add":
        catalogue.add_photos([new_photo(2)], "ab" * 32, record=record)
        assert [p.id for p in catalogue.photos([1, 2])] == [1, 2]
    elif write == "relocate":
        catalogue.relocate_photo(1, "/elsewhere/1.jpg", 101, 5, "/elsewhere", record=record)
        assert catalogue.photo(1).path == "/elsewhere/1.jpg"
    else:
        catalogue.delete_photos([1], record=record)
        assert catalogue.photos([1]) == []
    assert [e.payload["ids"] for e in store.audit_entries()] == [[2] if write == "add" else [1]]
    assert store.verify_audit().ok
