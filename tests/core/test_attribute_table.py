"""The cached attribute table (what filters read) kept up to date for the photos each write touched,
checked against a full recomputation after every kind of write: imports, manual edits, imported
sheets, a changed file, prune, folder removal and a model change. Real SQLite and FAISS throughout."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from core.common.types import AttributeSource
from tests.conftest import draw_person


def recomputed(workspace):
    """The table from scratch, in Python: every photo's effective values as ``attributes_of`` gives
    them (manual beats imported beats the model), coded by the schema; -1 for a value it lacks."""
    with sqlite3.connect(workspace.catalogue.path) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM photos ORDER BY id")]
    effective = workspace.catalogue.attributes_of(ids)
    specs = workspace.schema.attributes
    values = np.full((len(ids), len(specs)), -1, np.int16)
    confidence = np.zeros((len(ids), len(specs)), np.float32)
    for i, photo_id in enumerate(ids):
        for j, spec in enumerate(specs):
            found = effective[photo_id].get(spec.name)
            if found is not None and found.value in spec.values:
                values[i, j] = spec.values.index(found.value)
                confidence[i, j] = found.confidence if found.source is AttributeSource.MODEL else 1.0
    return np.asarray(ids, np.int64), values, confidence


def assert_current(workspace):
    """The cached table equals both a recomputation in Python and a fresh read of the whole catalogue."""
    table = workspace.attribute_table()
    ids, values, confidence = recomputed(workspace)
    np.testing.assert_array_equal(table.ids, ids)
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.confidence, confidence)
    catalogue = workspace.catalogue  # read whole here (past the test's record of the workspace's reads)
    whole = type(catalogue).attribute_table(catalogue, {a.name: a.values for a in workspace.schema.attributes})
    np.testing.assert_array_equal(whole.ids, ids)
    np.testing.assert_array_equal(whole.values, values)
    np.testing.assert_array_equal(whole.confidence, confidence)
    return table


@pytest.fixture
def reads(monkeypatch):
    """Record how a workspace's catalogue is read for the table: whole (None) or for some photos."""

    def watch(workspace):
        seen = []
        catalogue = workspace.catalogue
        read = catalogue.attribute_table

        def recorded(schema_values, photo_ids=None):
            seen.append(None if photo_ids is None else sorted(int(i) for i in photo_ids))
            return read(schema_values, photo_ids)

        monkeypatch.setattr(catalogue, "attribute_table", recorded)
        return seen

    return watch


def test_the_cached_table_follows_every_write_without_reading_the_whole_catalogue_again(
    tmp_path, make_photos, open_workspace, model_dir, reads
):
    from core.model.inference import InferenceModel

    first = make_photos(8, tmp_path / "first")
    workspace = open_workspace()
    seen = reads(workspace)
    workspace.import_paths([first[0].parent])
    ids = {p.name: state.photo_id for p, state in _states(workspace).items()}
    table = assert_current(workspace)
    assert seen == [None]  # the first read is whole

    # predictions (as a trained head writes them), then a person's corrections: one read of that photo each
    a, b = ids["person_0000.jpg"], ids["person_0001.jpg"]
    workspace.gallery.set_attribute(a, "bag", "yes", AttributeSource.MODEL, confidence=0.55)
    workspace.gallery.set_attribute(b, "bag", "no", AttributeSource.MODEL, confidence=0.95)
    workspace.gallery.set_attribute(b, "gender", "male", AttributeSource.MODEL, confidence=0.7)
    assert assert_current(workspace) is table  # the same photos: updated in place
    workspace.gallery.set_attributes_by_hand(b, {"gender": "female", "hair": "long"})
    assert assert_current(workspace) is table
    assert seen[1:] == [[a, b], [b]]

    # an import adds rows for the new photos alone
    second = make_photos(5, tmp_path / "second", start=100)
    workspace.import_paths([second[0].parent])
    ids = {p.name: state.photo_id for p, state in _states(workspace).items()}
    assert len(assert_current(workspace).ids) == 13
    assert seen[-1] == sorted(ids[p.name] for p in second)

    # an imported sheet: stated values beat predictions, and a manual value still beats the sheet
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "filename,gender,bag,hat\n"
        "person_0000.jpg,male,no,yes\n"  # over a's prediction
        "person_0001.jpg,male,,\n"  # b's manual 'female' stays
        "person_0100.jpg,female,yes,no\n"
    )
    workspace.gallery.import_attribute_sheet(sheet)
    table = assert_current(workspace)
    row = {int(i): r for r, i in enumerate(table.ids)}
    gender, bag = table.names.index("gender"), table.names.index("bag")
    assert table.values[row[b], gender] == 1 and table.values[row[a], bag] == 1  # female (manual); no (sheet)
    assert table.confidence[row[a], bag] == 1.0  # a stated value passes any minimum confidence
    assert seen[-1] == sorted([a, b, ids["person_0100.jpg"]])

    # a value this model's schema lacks (stated under another one): it still beats the prediction
    workspace.catalogue.set_values(a, {"bag": "satchel"}, AttributeSource.MANUAL, set_by="someone")
    table = assert_current(workspace)
    assert table.values[row[a], bag] == -1 and table.confidence[row[a], bag] == 0.0

    # a changed file replaces its record; a file gone is flagged, then pruned; a folder removed
    draw_person(999).save(first[3], quality=90)
    first[4].unlink()
    workspace.import_paths([first[0].parent])
    assert_current(workspace)
    assert workspace.gallery.prune_missing() == 1
    assert_current(workspace)
    assert workspace.gallery.remove_folder(str(second[0].parent)) == 5
    table = assert_current(workspace)
    assert len(table.ids) == 7
    assert None not in seen[1:]  # every update read only the photos written
    workspace.close()

    # a model change: the new model's predictions replace the old ones as each batch is embedded
    predicting = InferenceModel(model_dir, device="cpu")
    assert predicting.predicts_attributes
    upgraded = open_workspace(tmp_path / "data", model=predicting)
    seen = reads(upgraded)
    assert_current(upgraded)
    checked = []

    def check_each_batch(progress):
        checked.append(progress.done)
        assert_current(upgraded)

    assert upgraded.gallery.embed_missing(progress=check_each_batch, batch_size=2).updated == 7
    assert checked == [2, 4, 6, 7] and seen[0] is None and None not in seen[1:]
    table = assert_current(upgraded)
    predicted = (table.values >= 0) & (table.confidence < 1)
    assert predicted.any()  # predictions of the new model are in the table
    assert table.values[list(table.ids).index(b), table.names.index("gender")] == 1  # the manual value stays


def _states(workspace):
    from pathlib import Path

    return {Path(path): state for path, state in workspace.catalogue.file_states().items()}


def test_a_search_without_filters_never_waits_for_the_table(open_workspace, make_photos, reads):
    """At a million photos the first read of the table takes seconds: the first sketch searched
    after opening (no filter) must not pay for it."""
    photos = make_photos(3)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    seen = reads(workspace)
    query = workspace.embed_sketches([photos[0]])
    assert len(workspace.search_embeddings(query, top_k=3, min_confidence=0.5)[0]) == 3
    assert seen == []
    workspace.search_embeddings(query, top_k=3, where={"gender": "male"})
    assert seen == [None]


def _filter_then_close(workspace):
    assert_current(workspace)  # read (whole, or from the cache file) and saved at close
    workspace.close()


def test_reopening_reads_only_the_photos_another_program_changed(tmp_path, make_photos, open_workspace, reads):
    first = make_photos(8, tmp_path / "first")
    workspace = open_workspace()
    workspace.import_paths([first[0].parent])
    seen = reads(workspace)
    _filter_then_close(workspace)
    assert seen == [None] and workspace.attribute_tables.path.exists()
    assert workspace.attribute_tables.path.stat().st_mode & 0o777 == 0o600

    # another workspace (as another process would: it shares nothing with the first) changes the
    # gallery without ever reading the table: an import, a sheet, a manual value, prune, folder removal
    other = open_workspace()
    ids = {p.name: state.photo_id for p, state in _states(other).items()}
    second = make_photos(3, tmp_path / "second", start=100)
    third = make_photos(2, tmp_path / "third", start=200)
    other.import_paths([second[0].parent, third[0].parent])
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("filename,gender,bag\nperson_0000.jpg,male,no\nperson_0100.jpg,female,yes\n")
    other.gallery.import_attribute_sheet(sheet)
    other.gallery.set_attributes_by_hand(ids["person_0001.jpg"], {"gender": "female", "hair": "long"})
    first[2].unlink()
    other.import_paths([first[0].parent])
    assert other.gallery.prune_missing() == 1
    assert other.gallery.remove_folder(str(third[0].parent)) == 2
    other.close()
    # and another program, straight through SQLite
    with sqlite3.connect(workspace.catalogue.path) as db:
        db.execute(
            "INSERT INTO photo_attributes (photo_id, name, source, value, confidence) "
            "VALUES (?, 'hat', 'manual', 'yes', 1)",
            (ids["person_0003.jpg"],),
        )

    reopened = open_workspace()
    seen = reads(reopened)
    table = assert_current(reopened)
    assert len(table.ids) == 10
    added = sorted(s.photo_id for p, s in _states(reopened).items() if p.parent == second[0].parent)
    removed = {ids["person_0002.jpg"]} | set(range(max(ids.values()) + 1, max(added) + 3))  # pruned, then the folder
    expected = {ids["person_0000.jpg"], ids["person_0001.jpg"], ids["person_0003.jpg"], *added}
    assert len(seen) == 1 and expected <= set(seen[0]) <= expected | removed  # by id: the photos changed
    reopened.close()

    # unchanged since: the first filter after reopening reads no attribute row at all
    again = open_workspace()
    seen = reads(again)
    assert_current(again)
    assert seen == []


def test_a_table_kept_while_another_workspace_prunes_the_log_is_read_again(tmp_path, make_photos, open_workspace):
    photos = make_photos(4)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    assert_current(workspace)  # this workspace's table, at the log's position then
    other = open_workspace()
    other.gallery.set_attribute(int(other.photo_ids()[0]), "hat", "yes")  # other's table: from the cache file
    assert_current(other)  # brought up to date by id
    other.close()  # saves at its position, and prunes the log up to it
    with sqlite3.connect(workspace.catalogue.path) as db:
        marker = db.execute("SELECT seq, photo_id FROM attribute_changes ORDER BY seq LIMIT 1").fetchone()
    assert marker[1] == 0 and marker[0] > workspace.attribute_tables.seq  # past the first workspace's table
    assert_current(workspace)  # which therefore reads whole


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another schema", "values out of range", "log emptied"])
def test_a_cache_file_that_cannot_be_trusted_is_read_again_from_the_catalogue(
    tmp_path, make_photos, open_workspace, reads, damage
):
    from core.index import attribute_cache

    photos = make_photos(5)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    _filter_then_close(workspace)
    path = workspace.attribute_tables.path
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a table" * 100)
    else:
        schema = {a.name: a.values for a in workspace.schema.attributes}
        table = workspace.attribute_table()
        seq = workspace.attribute_tables.seq
        if damage == "another schema":
            schema = {**schema, "gender": (*schema["gender"], "other")}
        elif damage == "values out of range":
            table.values[0, 0] = 99
        attribute_cache.save_table(path, table, schema, seq)
        if damage == "log emptied":
            with sqlite3.connect(workspace.catalogue.path) as db:
                db.execute("DELETE FROM attribute_changes")
            # written meanwhile: the cache's table misses it, and only the log could have said so
            with sqlite3.connect(workspace.catalogue.path) as db:
                db.execute(
                    "INSERT INTO photo_attributes (photo_id, name, source, value, confidence) "
                    "SELECT id, 'hat', 'manual', 'yes', 1 FROM photos"
                )
    reopened = open_workspace()
    seen = reads(reopened)
    assert_current(reopened)
    assert seen == [None]  # read whole
    reopened.close()
    again = open_workspace()  # and cached again, to be trusted next time
    seen = reads(again)
    assert_current(again)
    assert seen == []


def test_past_a_quarter_of_the_table_changed_it_is_read_whole(
    tmp_path, make_photos, open_workspace, reads, monkeypatch
):
    import core.index.attribute_table

    monkeypatch.setattr(core.index.attribute_table, "REREAD_BY_ID_UP_TO", 0)
    first = make_photos(4, tmp_path / "first")
    workspace = open_workspace()
    workspace.import_paths([first[0].parent])
    _filter_then_close(workspace)
    other = open_workspace()
    other.import_paths([make_photos(2, tmp_path / "second", start=50)[0].parent])
    other.close()
    reopened = open_workspace()
    seen = reads(reopened)
    assert len(assert_current(reopened).ids) == 6
    assert seen == [None]


def test_the_change_log_keeps_only_what_a_cache_file_still_needs(tmp_path, make_photos, open_workspace):
    def log_rows(workspace):
        with sqlite3.connect(workspace.catalogue.path) as db:
            return db.execute("SELECT photo_id FROM attribute_changes ORDER BY seq").fetchall()

    photos = make_photos(4)
    importer = open_workspace()  # never filters: no cache file
    importer.import_paths([photos[0].parent])
    assert len(log_rows(importer)) > 4
    importer.close()
    assert log_rows(importer) == [(0,)]  # no cache needs any of it: the marker alone
    workspace = open_workspace()
    assert_current(workspace)  # read whole and saved: the log is pruned up to it
    workspace.gallery.set_attribute(int(workspace.photo_ids()[0]), "hat", "yes")
    assert len(log_rows(workspace)) == 2
    workspace.close()  # the table is saved at its position only once brought up to date
    assert len(log_rows(workspace)) == 2
    again = open_workspace()
    assert_current(again)
    again.close()
    assert log_rows(again) == [(0,)]
