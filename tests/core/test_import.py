"""Gallery import on a real catalogue, index and network: identity by content, moves, removals,
bad files, cancellation, and recovery of the index."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from core.common.types import ImportProgress
from tests.conftest import draw_person
from tests.core.test_imaging import bad_files
from tests.core.test_photo_audit import import_run


def photo_paths(workspace) -> dict[str, int]:
    return {path: state.photo_id for path, state in workspace.catalogue.file_states().items()}


def test_import_then_reimport_adds_nothing(open_workspace, make_photos):
    photos = make_photos(6)
    workspace = open_workspace()
    first = workspace.import_paths([photos[0].parent])
    assert (first.added, first.updated, first.unchanged, first.failed) == (6, 0, 0, [])
    assert set(photo_paths(workspace)) == {str(p) for p in photos}
    second = workspace.import_paths([photos[0].parent])
    assert (second.added, second.updated, second.unchanged) == (0, 0, 6)
    assert workspace.catalogue.count_photos() == 6 and len(workspace.index) == 6
    assert workspace.verify().ok


def test_reimport_after_touch_hashes_again_but_adds_nothing(open_workspace, make_photos):
    photos = make_photos(3)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    before = photo_paths(workspace)
    photos[1].touch()  # new mtime, same content
    summary = workspace.import_paths([photos[0].parent])
    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 3)
    assert photo_paths(workspace) == before


def test_moved_file_is_updated_not_duplicated(open_workspace, make_photos, tmp_path):
    photos = make_photos(4)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    old_ids = photo_paths(workspace)
    moved = photos[0].parent / "renamed" / "moved.jpg"
    moved.parent.mkdir()
    shutil.move(photos[2], moved)
    summary = workspace.import_paths([photos[0].parent])
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 3)
    now = photo_paths(workspace)
    assert now[str(moved)] == old_ids[str(photos[2])]  # same photo, same id, new path
    assert str(photos[2]) not in now and len(now) == 4 and len(workspace.index) == 4


def test_copy_of_a_photo_is_not_catalogued_twice_and_is_named_as_a_duplicate(open_workspace, make_photos, tmp_path):
    photos = make_photos(2)
    copy = photos[0].parent / "copy.jpg"
    shutil.copy(photos[0], copy)
    workspace = open_workspace()
    summary = workspace.import_paths([photos[0].parent])
    # a first import: nothing is "unchanged", the copy is a duplicate of the file catalogued
    assert (summary.added, summary.updated, summary.unchanged, summary.failed) == (2, 0, 0, [])
    catalogued = set(workspace.catalogue.file_states())
    assert len(summary.duplicates) == 1 and catalogued == {summary.duplicates[0].of, str(photos[1])}
    assert {summary.duplicates[0].path, summary.duplicates[0].of} == {str(copy), str(photos[0])}
    logged = [e.payload for e in workspace.casework.audit_entries() if e.kind == "import"]
    assert logged[-1]["duplicates"] == 1
    assert import_run(workspace.data_dir, logged[-1]["import_id"])["unchanged"] == 0

    again = workspace.import_paths([photos[0].parent])  # the copy is still a duplicate, the rest unchanged
    assert (again.added, again.unchanged, again.duplicates) == (0, 2, summary.duplicates)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(photos[1], elsewhere / "same.jpg")  # a copy of a photo catalogued by an earlier import
    later = workspace.import_paths([elsewhere])
    assert (later.added, later.unchanged) == (0, 0)
    assert [(d.path, d.of) for d in later.duplicates] == [(str(elsewhere / "same.jpg"), str(photos[1]))]
    assert workspace.catalogue.count_photos() == 2


def test_replaced_content_at_same_path_replaces_the_photo(open_workspace, make_photos):
    photos = make_photos(2)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    old_id = photo_paths(workspace)[str(photos[0])]
    draw_person(999).save(photos[0], quality=90)
    summary = workspace.import_paths([photos[0].parent])
    assert (summary.added, summary.updated) == (0, 1)
    new_id = photo_paths(workspace)[str(photos[0])]
    assert new_id > old_id  # ids are never reused
    assert sorted(workspace.index.ids()) == sorted(photo_paths(workspace).values())


def test_removed_files_are_flagged_then_pruned(open_workspace, make_photos, tmp_path):
    photos = make_photos(5)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    photos[1].unlink()
    shutil.move(photos[3], tmp_path / "away.jpg")  # a rename keeps the modification time
    workspace.import_paths([photos[0].parent])
    assert workspace.stats().missing == 2
    assert [path for _, path in workspace.catalogue.missing_photos()] == [str(photos[1]), str(photos[3])]

    shutil.move(tmp_path / "away.jpg", photos[3])  # back, unchanged: no longer missing
    assert workspace.import_paths([photos[0].parent]).unchanged == 4
    assert [path for _, path in workspace.catalogue.missing_photos()] == [str(photos[1])]

    assert workspace.gallery.prune_missing() == 1
    assert set(photo_paths(workspace)) == {str(photos[i]) for i in (0, 2, 3, 4)}
    assert len(workspace.index) == 4 and workspace.verify().ok


def test_each_folder_counts_the_files_its_last_import_could_not_read(
    open_workspace, make_photos, tmp_path, monkeypatch
):
    first = make_photos(2, tmp_path / "first")
    second = make_photos(1, tmp_path / "second", start=10)
    broken = [tmp_path / "first" / "broken.jpg", tmp_path / "first" / "sub" / "cut.jpg"]
    broken[1].parent.mkdir()
    for path in broken:
        path.write_bytes(b"not a photo")
    workspace = open_workspace()
    workspace.import_paths([first[0].parent])
    workspace.import_paths([second[0].parent])  # a later import, with no failure, of another folder
    counts = {f.folder: (f.photos, f.failed) for f in workspace.folders()}
    assert counts == {str(tmp_path / "first"): (2, 2), str(tmp_path / "second"): (1, 0)}

    shutil.copy(first[0], broken[0])  # mended, as a copy of a catalogued photo: a duplicate, not a failure
    monkeypatch.chdir(tmp_path)
    workspace.import_paths(["first/sub"])  # a part of the folder, named from where the command runs
    assert {f.folder: f.failed for f in workspace.folders()}[str(tmp_path / "first")] == 2
    workspace.import_paths(["first"])  # the whole folder again
    assert {f.folder: f.failed for f in workspace.folders()} == {
        str(tmp_path / "first"): 1,
        str(tmp_path / "second"): 0,
    }


def test_bad_files_are_reported_and_never_stop_the_import(open_workspace, make_photos):
    photos = make_photos(4)
    expected = bad_files(photos[0].parent)
    workspace = open_workspace()
    summary = workspace.import_paths([photos[0].parent])
    assert summary.added == 4
    reasons = {f.path.rsplit("/", 1)[-1]: f.reason for f in summary.failed}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
    assert workspace.catalogue.last_import_failures() == summary.failed
    assert workspace.stats().failed == len(expected)


def test_symlink_loops_are_walked_once(open_workspace, make_photos):
    photos = make_photos(3)
    folder = photos[0].parent
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    workspace = open_workspace()
    summary = workspace.import_paths([folder])
    assert summary.added == 3 and summary.failed == []


def test_originals_are_not_modified(open_workspace, make_photos):
    photos = make_photos(3)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos}
    open_workspace().import_paths([photos[0].parent])
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in photos} == before


def test_progress_is_reported_and_cancel_stops_between_batches(open_workspace, make_photos):
    photos = make_photos(40)
    workspace = open_workspace()
    cancel = threading.Event()
    seen: list[ImportProgress] = []

    def on_progress(progress: ImportProgress) -> None:
        seen.append(progress)
        if progress.done >= 5:
            cancel.set()

    summary = workspace.import_paths([photos[0].parent], progress=on_progress, cancel=cancel, batch_size=4)
    assert summary.cancelled
    assert 5 <= summary.added < 40
    assert seen and seen[0].total == 40
    # what was committed is consistent, and the next import completes the rest
    assert workspace.verify().ok
    rest = workspace.import_paths([photos[0].parent])
    assert rest.added + summary.added == 40 and workspace.catalogue.count_photos() == 40


def test_deleted_or_corrupt_index_is_rebuilt_from_the_catalogue(open_workspace, make_photos, caplog, tmp_path):
    photos = make_photos(5)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    query = workspace.index.reconstruct(photo_paths(workspace)[str(photos[2])])
    expected = workspace.search_embeddings(query[None], top_k=5)[0]
    index_path = workspace.indexes.path
    workspace.close()

    index_path.unlink()
    reopened = open_workspace()
    assert len(reopened.index) == 5 and index_path.exists()
    assert reopened.search_embeddings(query[None], top_k=5)[0] == expected
    reopened.close()

    data = bytearray(index_path.read_bytes())
    data[-100:] = bytes(100)  # damage the stored vectors
    index_path.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = open_workspace()
    assert "checksum" in caplog.text
    assert again.verify().ok and again.search_embeddings(query[None], top_k=5)[0] == expected


def test_stale_index_is_rebuilt(open_workspace, make_photos):
    photos = make_photos(4)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    stale = workspace.indexes.path.read_bytes()
    make_photos(2, start=100)
    workspace.import_paths([photos[0].parent])
    workspace.indexes.path.write_bytes(stale)  # as if the process died before saving the index
    workspace.close()
    reopened = open_workspace()
    assert len(reopened.index) == 6 and reopened.verify().ok


def test_embeddings_are_unit_vectors_matching_the_model(open_workspace, make_photos, inference_model):
    photos = make_photos(3)
    workspace = open_workspace()
    workspace.import_paths([photos[0].parent])
    ids, vectors = workspace.catalogue.embeddings(inference_model.embedding_key, inference_model.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    from core.common.imaging import load_rgb

    direct = inference_model.embed_images([load_rgb(p) for p in photos], "photo").embeddings
    by_path = photo_paths(workspace)
    order = [list(ids).index(by_path[str(p)]) for p in photos]
    np.testing.assert_allclose(vectors[order], direct, atol=1e-4)


# A child process that imports a folder with the bundled model (its ONNX runtime, as the app and the
# command line import), printing each progress report's count of photos consumed.
IMPORTING_CHILD = """
import sys
from pathlib import Path

from core.common.paths import default_model_dir
from core.model.loading import load_model
from core.workspace import Workspace

with Workspace(Path(sys.argv[1]), model=load_model(default_model_dir(), "cpu")) as workspace:
    workspace.import_paths([sys.argv[2]], progress=lambda p: print(p.done, flush=True), batch_size=int(sys.argv[3]))
"""


@pytest.mark.slow
def test_kill_9_during_the_parallel_import_loses_at_most_the_batch_in_flight(tmp_path, make_photos):
    """With photos prepared on a pool of threads ahead of the model, a kill -9 still leaves whole
    committed batches, each with its audit entry, and no photo the importer had taken past the
    batch it was filling; the next import adds exactly the rest."""
    import os
    import signal
    import subprocess
    import sys

    from core.gallery.importer import preparing_threads
    from tests.core.test_cli import ROOT, count_photos, logged

    if preparing_threads("cpu") < 2:
        pytest.skip("one core: photos are prepared on one thread")
    batch, total = 8, 96
    photos = make_photos(total)
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORTING_CHILD, str(data), str(photos[0].parent), str(batch)],
        cwd=ROOT,
        env={**os.environ, "SKETCHSEARCH_DEVICE": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    consumed = 0
    for line in child.stdout:
        consumed = int(line)
        if consumed >= 3 * batch:
            os.kill(child.pid, signal.SIGKILL)  # at once: the count just printed is still current
            break
    child.wait()
    assert 3 * batch <= consumed < total, child.stderr.read()[-2000:]

    committed = count_photos(data / "catalogue.sqlite3")
    assert committed % batch == 0  # whole batches: each is one transaction
    assert consumed - committed <= batch  # what was taken past the committed batches: the one in flight
    batches = logged(data, "import batch")  # one entry per committed transaction, written in it
    assert sum(entry["added"] for entry in batches) == committed
    assert all(0 < entry["added"] <= batch for entry in batches)

    from core.workspace import Workspace

    with Workspace(data) as workspace:
        assert workspace.verify().ok
        summary = workspace.import_paths([photos[0].parent], batch_size=batch)
        assert (summary.added, summary.unchanged, summary.failed) == (total - committed, committed, [])
        assert len(workspace.index) == total == len(photo_paths(workspace))
