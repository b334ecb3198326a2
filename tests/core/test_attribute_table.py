"""The cached attribute table (what filters read) kept up to date for the photos each write touched,
checked against a full recomputation after every kind of write: imports, manual edits, imported
sheets, a changed file, prune, folder removal and a model change. Real SQLite and FAISS throughout."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from core.types import AttributeSource
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
    workspace.set_attribute(a, "bag", "yes", AttributeSource.MODEL, confidence=0.55)
    workspace.set_attribute(b, "bag", "no", AttributeSource.MODEL, confidence=0.95)
    workspace.set_attribute(b, "gender", "male", AttributeSource.MODEL, confidence=0.7)
    assert assert_current(workspace) is table  # the same photos: updated in place
    workspace.set_attributes_by_hand(b, {"gender": "female", "hair": "long"})
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
    workspace.import_attribute_sheet(sheet)
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
    assert workspace.prune_missing() == 1
    assert_current(workspace)
    assert workspace.remove_folder(str(second[0].parent)) == 5
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

    assert upgraded.embed_missing(progress=check_each_batch, batch_size=2).updated == 7
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
