"""The SQLite catalogue: schema versions and migrations, attribute precedence, id stability."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.catalogue.catalogue import Catalogue, NewPhoto, utcnow
from core.catalogue.migrations import LATEST_VERSION
from core.common.errors import CatalogueError, UnknownPhotoError
from core.common.types import AttributeSource


def new_photo(i: int, **attributes) -> NewPhoto:
    return NewPhoto(
        path=f"/photos/{i}.jpg",
        sha256=f"{i:064x}",
        size_bytes=100 + i,
        mtime_ns=i,
        width=10,
        height=20,
        source_folder="/photos",
        thumbnail=b"jpeg",
        embedding=np.full(4, 0.5, np.float32),
        attributes=attributes,
    )


def columns(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as db:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        ]
        # (name, type, notnull, pk): defaults differ by construction (ALTER TABLE needs one)
        return {t: sorted((c[1], c[2], c[3], c[5]) for c in db.execute(f"PRAGMA table_info({t})")) for t in tables}


def test_new_catalogue_has_latest_schema_with_wal_and_foreign_keys(tmp_path):
    catalogue = Catalogue(tmp_path)
    with catalogue.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA user_version").scalar() == LATEST_VERSION
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    catalogue.close()


FROZEN = Path(__file__).resolve().parent.parent / "data"


def frozen_catalogue(version: int, tmp_path: Path) -> Path:
    """A copy of a catalogue file as SketchSearch wrote it at ``version`` (committed under tests/data,
    never regenerated: the migration chain must start from the real thing)."""
    folder = tmp_path / f"v{version}"
    folder.mkdir()
    shutil.copyfile(FROZEN / f"catalogue-v{version}.sqlite3", folder / Catalogue.FILE_NAME)
    return folder


def test_version_1_file_is_migrated_with_its_data(tmp_path):
    old = frozen_catalogue(1, tmp_path)
    catalogue = Catalogue(old)
    assert [catalogue.photo(i).path for i in (1, 2)] == ["/gallery/a.jpg", "/gallery/b.jpg"]
    first = catalogue.photo(1)
    assert not first.missing and first.sha256 == "11" * 32
    assert first.attributes["gender"].value == "male"  # the manual value wins over the model's guess
    assert first.attributes["gender"].source == AttributeSource.MANUAL
    assert catalogue.photo(2).attributes["bag"].source == AttributeSource.IMPORTED
    assert catalogue.file_states()["/gallery/a.jpg"].mtime_ns == 0  # forces one re-hash, never a false "unchanged"
    ids, vectors = catalogue.embeddings("ab" * 32, 4)
    assert list(ids) == [1, 2] and np.allclose(vectors, 0.5)
    catalogue.close()

    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert columns(old / Catalogue.FILE_NAME) == columns(fresh / Catalogue.FILE_NAME)


def test_version_2_file_opens_with_nothing_lost(tmp_path):
    old = frozen_catalogue(2, tmp_path)
    with sqlite3.connect(old / Catalogue.FILE_NAME) as db:
        before = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in columns(old / Catalogue.FILE_NAME)}
    assert before["photos"] == 3 and before["embeddings"] == 3 and before["import_failures"] == 1
    catalogue = Catalogue(old)
    gender = catalogue.photo(1).attributes["gender"]
    assert (gender.value, gender.source) == ("female", AttributeSource.MANUAL)
    assert (gender.set_by, gender.set_at) == (None, None)  # never recorded then, and not made up now
    catalogue.close()
    with sqlite3.connect(old / Catalogue.FILE_NAME) as db:
        for table, count in before.items():
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == count, table
    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert columns(old / Catalogue.FILE_NAME) == columns(fresh / Catalogue.FILE_NAME)


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    Catalogue(tmp_path).close()
    path = tmp_path / Catalogue.FILE_NAME
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(CatalogueError, match="newer"):
        Catalogue(tmp_path)
    assert path.read_bytes() == before


def test_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / Catalogue.FILE_NAME).write_text("hello")
    with pytest.raises(CatalogueError, match="cannot open the catalogue"):
        Catalogue(tmp_path)


def test_ids_are_never_reused(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    first = catalogue.add_photos([new_photo(1), new_photo(2)], "m" * 64)
    catalogue.delete_photos([first[1]])
    again = catalogue.add_photos([new_photo(3)], "m" * 64)
    assert again[0] > first[1]
    catalogue.close()


def test_present_photos_leave_out_those_found_missing(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    ids = catalogue.add_photos([new_photo(1), new_photo(2), new_photo(3)], "m" * 64)
    catalogue.mark_missing([ids[1]])
    assert catalogue.present_photos() == [
        (ids[0], "/photos/1.jpg", f"{1:064x}"),
        (ids[2], "/photos/3.jpg", f"{3:064x}"),
    ]
    catalogue.close()


def test_manual_beats_imported_beats_model(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    (pid,) = catalogue.add_photos([new_photo(1, gender=("male", 0.7), hair=("long", 0.9))], "m" * 64)
    assert catalogue.photo(pid).attributes["gender"].source is AttributeSource.MODEL
    catalogue.set_attribute(pid, "gender", "female", AttributeSource.IMPORTED)
    assert catalogue.photo(pid).attributes["gender"].value == "female"
    catalogue.set_attribute(pid, "gender", "male", AttributeSource.MANUAL)
    attributes = catalogue.photo(pid).attributes
    assert (attributes["gender"].value, attributes["gender"].source) == ("male", AttributeSource.MANUAL)
    assert attributes["hair"].confidence == pytest.approx(0.9)

    table = catalogue.attribute_table({"gender": ("male", "female"), "hair": ("short", "long")})
    assert table.values.tolist() == [[0, 1]] and table.confidence[0].tolist() == pytest.approx([1.0, 0.9])
    with pytest.raises(UnknownPhotoError):
        catalogue.set_attribute(999, "gender", "male", AttributeSource.MANUAL)
    catalogue.close()


def test_stated_values_record_who_and_when_and_touch_nothing_else(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    (pid,) = catalogue.add_photos([new_photo(1, gender=("male", 0.7), bag=("no", 0.62), hat=("no", 0.9))], "m" * 64)
    catalogue.set_values(pid, {"gender": "female", "hat": "yes"}, AttributeSource.MANUAL, set_by="j.doe")
    catalogue.set_attributes([(pid, "hair", "long")], AttributeSource.IMPORTED, set_by="importer")
    attributes = catalogue.photo(pid).attributes
    for name, value in (("gender", "female"), ("hat", "yes")):
        stated = attributes[name]
        assert (stated.value, stated.source, stated.set_by) == (value, AttributeSource.MANUAL, "j.doe")
        assert stated.set_at is not None and (utcnow() - stated.set_at).total_seconds() < 3600
    assert (attributes["hair"].source, attributes["hair"].set_by) == (AttributeSource.IMPORTED, "importer")
    bag = attributes["bag"]  # the unchecked guess stays a guess, with its confidence
    assert (bag.value, bag.source, bag.confidence, bag.set_by, bag.set_at) == (
        "no",
        AttributeSource.MODEL,
        pytest.approx(0.62),
        None,
        None,
    )
    catalogue.close()


def test_deleting_a_photo_removes_its_embeddings_and_attributes(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    (pid,) = catalogue.add_photos([new_photo(1, gender=("male", 0.7))], "m" * 64)
    catalogue.delete_photos([pid])
    with catalogue.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM embeddings").scalar() == 0
        assert connection.exec_driver_sql("SELECT count(*) FROM photo_attributes").scalar() == 0
    catalogue.close()


def indices(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}


def test_version_2_file_gets_the_scale_indices_with_every_row_kept(tmp_path):
    old = frozen_catalogue(2, tmp_path)
    file = old / Catalogue.FILE_NAME
    tables = list(columns(file))
    with sqlite3.connect(file) as db:
        before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    Catalogue(old).close()
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        after = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
        # other steps may add columns at the end of a row; every value that was there is kept
        assert {t: [r[: len(b)] for r, b in zip(after[t], before[t], strict=True)] for t in tables} == before
        # the per-folder summary, the missing count and one model's ids are answered from indices
        # alone, never by reading each photo's row (and thumbnail) or each embedding's vector
        plans = {
            query: " ".join(r[-1] for r in db.execute(f"EXPLAIN QUERY PLAN {query}"))
            for query in (
                "SELECT source_folder, count(id), count(missing_since) FROM photos GROUP BY source_folder",
                "SELECT count(id) FROM photos WHERE missing_since IS NOT NULL",
                "SELECT photo_id FROM embeddings WHERE model_sha256 = 'x' ORDER BY photo_id",
            )
        }
    assert all("COVERING INDEX" in plan for plan in plans.values()), plans
    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert (
        indices(file)
        == indices(fresh / Catalogue.FILE_NAME)
        >= {
            "ix_photos_folder_missing",
            "ix_photos_missing_since",
            "ix_embeddings_model_photo",
        }
    )


def triggers(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}


CHANGE_TRIGGERS = {
    "attribute_changes_photo_insert",
    "attribute_changes_photo_delete",
    "attribute_changes_insert",
    "attribute_changes_update",
    "attribute_changes_delete",
}


def logged(catalogue: Catalogue) -> list[tuple[int, int]]:
    with sqlite3.connect(catalogue.path) as db:
        return db.execute("SELECT seq, photo_id FROM attribute_changes ORDER BY seq").fetchall()


@pytest.mark.parametrize("version", [1, 2, 5])
def test_old_files_get_the_attribute_change_log_and_log_every_write(tmp_path, version):
    if version == 5:  # a version-5 file: today's file without what version 6 added
        old = tmp_path / "v5"
        catalogue = Catalogue(old)
        catalogue.register_model("m" * 64, "m", 4, {})
        catalogue.add_photos([new_photo(1, gender=("male", 0.7)), new_photo(2, gender=("female", 0.8))], "m" * 64)
        catalogue.close()
        with sqlite3.connect(old / Catalogue.FILE_NAME) as db:
            for name in CHANGE_TRIGGERS:
                db.execute(f"DROP TRIGGER {name}")
            db.execute("DROP TABLE attribute_changes")
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'attribute_changes'")
            for action in ("update", "delete"):  # and without what version 7 added
                db.execute(f"DROP TRIGGER audit_seals_no_{action}")
            db.execute("DROP TABLE audit_seals")
            db.execute("DROP TABLE video_crops")  # and what version 8 added
            db.execute("DROP TABLE videos")
            db.execute("PRAGMA user_version = 5")
    else:
        old = frozen_catalogue(version, tmp_path)
    file = old / Catalogue.FILE_NAME
    catalogue = Catalogue(old)
    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert columns(file) == columns(fresh / Catalogue.FILE_NAME)
    assert triggers(file) == triggers(fresh / Catalogue.FILE_NAME) >= CHANGE_TRIGGERS
    assert logged(catalogue) == logged(Catalogue(fresh)) == [(1, 0)]  # the marker alone: no cache predates it
    schema = {"gender": ("male", "female")}
    whole = catalogue.attribute_table(schema)
    assert whole.seq == 1 and catalogue.attribute_changes_since(1)[0].tolist() == []

    first = int(whole.ids[0])
    catalogue.set_attribute(first, "gender", "female", AttributeSource.MANUAL)  # an insert
    catalogue.set_attribute(first, "gender", "male", AttributeSource.MANUAL)  # an update: replaces the row
    catalogue.register_model("m" * 64, "m", 4, {})
    (added,) = catalogue.add_photos([new_photo(7, gender=("male", 0.7), hair=("long", 0.9))], "m" * 64)
    catalogue.delete_photos([first])
    # one row per run of writes to one photo, always after every earlier one
    assert [photo for _, photo in logged(catalogue)] == [0, first, added, first]
    changed, top = catalogue.attribute_changes_since(1)
    assert changed.tolist() == sorted({first, added}) and top == logged(catalogue)[-1][0]
    assert catalogue.attribute_table(schema).seq == top
    assert catalogue.attribute_table(schema, [added]).seq is None  # a read by id is complete up to nothing
    catalogue.close()


def test_the_change_log_says_when_it_cannot_bring_a_table_up_to_date(tmp_path):
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    a, b, c = catalogue.add_photos([new_photo(i, gender=("male", 0.5)) for i in (1, 2, 3)], "m" * 64)
    # a batch writes its photos, then their attribute rows: two rows a photo, not one per attribute
    assert logged(catalogue) == [(1, 0), (2, a), (3, b), (4, c), (5, a), (6, b), (7, c)]
    assert catalogue.attribute_changes_since(7)[0].tolist() == []
    assert catalogue.attribute_changes_since(5)[0].tolist() == [b, c]
    # a write to the newest row's photo replaces that row: a table at 7 reads c again
    catalogue.set_attribute(c, "gender", "female", AttributeSource.MANUAL)
    assert logged(catalogue)[-2:] == [(6, b), (8, c)]
    assert catalogue.attribute_changes_since(7) == (pytest.approx([c]), 8)

    assert catalogue.prune_attribute_changes(5) == 4  # the marker moves to 5
    assert logged(catalogue) == [(5, 0), (6, b), (8, c)]
    assert catalogue.attribute_changes_since(5) == (pytest.approx([b, c]), 8)
    assert catalogue.attribute_changes_since(4) is None  # pruned past it
    assert catalogue.attribute_changes_since(9) is None  # ahead of the log: another catalogue's
    assert catalogue.prune_attribute_changes(3) == 0  # never back
    with sqlite3.connect(catalogue.path) as db:
        db.execute("DELETE FROM attribute_changes")
    assert catalogue.attribute_changes_since(8) is None  # emptied: the writes after a table cannot be told
    catalogue.set_attribute(a, "gender", "female", AttributeSource.MANUAL)
    assert catalogue.attribute_changes_since(8) is None  # nor after another write
    assert catalogue.prune_attribute_changes(9) == 0  # the marker is not put back by a prune alone
    assert catalogue.prune_attribute_changes(9, read_whole_at=9) == 1  # but after a whole read
    assert logged(catalogue) == [(9, 0)] and catalogue.attribute_changes_since(9)[0].tolist() == []
    with sqlite3.connect(catalogue.path) as db:
        for name in CHANGE_TRIGGERS:
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DROP TABLE attribute_changes")
    assert catalogue.attribute_changes_since(9) is None
    assert catalogue.attribute_table({"gender": ("male", "female")}).seq is None
    assert catalogue.prune_attribute_changes(9, read_whole_at=9) == 0
    catalogue.close()


def test_records_and_vectors_are_read_as_asked_whatever_the_path_or_state(tmp_path):
    """A page of results is read in one statement per table: records come back in the order asked
    (an id asked twice, twice; an unknown one left out), with a path that is not UTF-8, the missing
    mark, the import time and each attribute's winning source; vectors ascending by id."""
    catalogue = Catalogue(tmp_path)
    catalogue.register_model("m" * 64, "m", 4, {})
    odd = dataclasses.replace(new_photo(3), path="/photos/caf\udce9.jpg", embedding=np.full(4, 0.25, np.float32))
    ids = catalogue.add_photos([new_photo(1, gender=("male", 0.7)), new_photo(2, hair=("long", 0.9)), odd], "m" * 64)
    catalogue.set_attribute(ids[0], "gender", "female", AttributeSource.MANUAL)
    catalogue.mark_missing([ids[1]])

    records = catalogue.photos([ids[2], 999, ids[0], ids[2]])
    assert [r.id for r in records] == [ids[2], ids[0], ids[2]]
    assert records[0].path == "/photos/caf\udce9.jpg" and records[0].source_folder == "/photos"
    assert (records[1].attributes["gender"].value, records[1].attributes["gender"].source) == (
        "female",
        AttributeSource.MANUAL,
    )
    assert records[1].attributes["gender"].set_at is not None
    second = catalogue.photo(ids[1])
    assert second.missing and not records[1].missing and second.attributes["hair"].confidence == pytest.approx(0.9)
    assert (second.size_bytes, second.mtime_ns, second.width, second.height) == (102, 2, 10, 20)
    assert (utcnow() - second.imported_at).total_seconds() < 3600

    found, vectors = catalogue.embeddings_of("m" * 64, 4, [ids[2], ids[0], 999])
    assert found.tolist() == sorted([ids[0], ids[2]])
    assert vectors.tolist() == [[0.5] * 4, [0.25] * 4]
    catalogue.close()
