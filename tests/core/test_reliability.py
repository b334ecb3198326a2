"""Reliability against hostile and careless input (issue 25): odd file names, odd data folders,
stale or corrupted results, locks and permissions. Real catalogue, index and network throughout."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import struct
import tracemalloc
import zlib

import pytest
from PIL import Image

from tests.conftest import draw_person


def test_a_non_utf8_file_name_is_catalogued_and_the_rest_still_imported(open_workspace, make_photos):
    photos = make_photos(40)
    folder = photos[0].parent
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")  # a Latin-1 byte: not UTF-8
    shutil.copy(os.fsencode(photos[0]), odd)
    draw_person(500).save(os.fsdecode(odd), format="JPEG")
    workspace = open_workspace()
    summary = workspace.import_paths([folder], batch_size=8)
    assert (summary.added, summary.failed) == (41, [])
    paths = set(workspace.catalogue.file_states())
    assert os.fsdecode(odd) in paths and len(paths) == 41
    assert workspace.verify().ok
    again = workspace.import_paths([folder], batch_size=8)  # the name means the same file next time
    assert (again.added, again.unchanged, again.failed) == (0, 41, [])


def last_import_run(data_dir) -> tuple[str, int]:
    with sqlite3.connect(data_dir / "catalogue.sqlite3") as db:
        return db.execute("SELECT status, added FROM import_runs ORDER BY id DESC LIMIT 1").fetchone()


def test_an_import_that_stops_early_logs_failed_and_only_what_was_committed(open_workspace, make_photos, tmp_path):
    photos = make_photos(12)
    workspace = open_workspace()

    def stop_after_ten(progress):  # progress is reported at most every 0.1 s, and always at the end
        if progress.done >= 10:
            raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError):
        workspace.import_paths([photos[0].parent], progress=stop_after_ten, batch_size=4)
    status, added = last_import_run(tmp_path / "data")
    assert status == "failed"
    assert added == workspace.catalogue.count_photos()  # batches of 4 committed, the one in flight not
    assert workspace.verify().ok


@pytest.mark.parametrize("name", ["case%41", "case?x=1", "case#1"])
def test_a_data_folder_name_with_url_characters_means_itself(tmp_path, inference_model, name):
    from core.workspace import Workspace

    (tmp_path / "caseA").mkdir()  # another case's folder, which 'case%41' must not open
    data_dir = tmp_path / name
    with Workspace(data_dir, model=inference_model) as workspace:
        workspace.catalogue.register_model("x" * 64, "probe", 4, {})
    assert (data_dir / "catalogue.sqlite3").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["caseA", name])
    assert list((tmp_path / "caseA").iterdir()) == []


def test_data_folder_and_files_are_private_whatever_the_umask(open_workspace, make_photos, tmp_path):
    photos = make_photos(2)
    old = os.umask(0o022)
    try:
        workspace = open_workspace(tmp_path / "new" / "data")
        workspace.import_paths([photos[0].parent])
    finally:
        os.umask(old)
    data_dir = tmp_path / "new" / "data"
    modes = {p.relative_to(data_dir).as_posix(): p.stat().st_mode & 0o777 for p in [data_dir, *data_dir.rglob("*")]}
    assert modes["."] == 0o700 and modes["index"] == 0o700
    files = {name: mode for name, mode in modes.items() if (data_dir / name).is_file()}
    assert "catalogue.sqlite3" in files and "catalogue.sqlite3-wal" in files
    assert any(name.endswith(".faiss") for name in files)
    assert set(files.values()) == {0o600}, files


def test_an_existing_data_folder_others_can_read_gets_a_warning(open_workspace, tmp_path, caplog):
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    open_workspace(data_dir)
    assert any(
        "can be read by other users" in r.getMessage() and str(data_dir) in r.getMessage() for r in caplog.records
    )


def copy_model(source, target, edit) -> None:
    """A copy of a model folder with its manifest edited by ``edit`` (a function of the JSON)."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    edit(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))


def swap_gender(manifest) -> None:
    for attribute in manifest["attributes"]["schema"]:
        if attribute["name"] == "gender":
            attribute["values"].reverse()


def test_a_model_without_a_weights_hash_is_refused(model_dir, tmp_path):
    from core.common.errors import CheckpointError
    from core.model.checkpoint import load_checkpoint

    copy_model(model_dir, tmp_path / "unhashed", lambda m: m.pop("weights_sha256"))
    with pytest.raises(CheckpointError, match="no weights_sha256"):
        load_checkpoint(tmp_path / "unhashed")


def test_an_attribute_schema_edited_in_the_manifest_is_refused_by_weights_that_record_theirs(
    untrained_model_dir, tmp_path
):
    from core.common.errors import CheckpointError
    from core.model.checkpoint import load_checkpoint

    load_checkpoint(untrained_model_dir)
    copy_model(untrained_model_dir, tmp_path / "swapped", swap_gender)
    with pytest.raises(CheckpointError, match="attribute schema"):
        load_checkpoint(tmp_path / "swapped")


def test_another_attribute_schema_predicts_the_gallery_again(model_dir, make_photos, tmp_path):
    from core.model.inference import InferenceModel
    from core.workspace import Workspace

    photos = make_photos(3)
    with Workspace(tmp_path / "data", model_dir, "cpu") as workspace:
        workspace.import_paths([photos[0].parent])
        before = workspace.model.embedding_key
    # the shipped model's weights predate recorded schemas: the key must tell the schemas apart
    copy_model(model_dir, tmp_path / "swapped", swap_gender)
    swapped = InferenceModel(tmp_path / "swapped", "cpu")
    assert swapped.embedding_key != before
    with Workspace(tmp_path / "data", model=swapped) as workspace:
        assert workspace.gallery.count_unembedded() == 3  # predictions are made again under the new value names


def test_a_link_to_a_device_is_not_a_regular_file(open_workspace, make_photos):
    photos = make_photos(2)
    device = photos[0].parent / "zero.jpg"
    device.symlink_to("/dev/zero")  # reading it would never end
    os.mkfifo(photos[0].parent / "pipe.jpg")  # opening it would block
    workspace = open_workspace()
    summary = workspace.import_paths([photos[0].parent])
    assert summary.added == 2
    assert {(os.path.basename(f.path), f.reason) for f in summary.failed} == {
        ("zero.jpg", "not a regular file"),
        ("pipe.jpg", "not a regular file"),
    }
    assert workspace.import_paths([device]).failed[0].reason == "not a regular file"


def test_a_huge_file_is_refused_from_its_header_without_reading_it(open_workspace, make_photos, tmp_path):
    photos = make_photos(1)
    sparse = photos[0].parent / "huge.jpg"
    with open(sparse, "wb") as handle:  # 200 MB of zeros that take no disk space
        handle.truncate(200 * 1024 * 1024)
    workspace = open_workspace()
    tracemalloc.start()
    try:
        summary = workspace.import_paths([photos[0].parent])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.added == 1
    assert [(f.path, f.reason) for f in summary.failed] == [(str(sparse), "not an image (unrecognised format)")]
    assert peak < 50 * 1024 * 1024  # the file was never read whole


def test_the_documented_pixel_limit_is_the_one_enforced(open_workspace, tmp_path):
    from core.common.errors import ImageLoadError
    from core.common.imaging import MAX_PIXELS, decode_image

    def png_claiming(width: int, height: int) -> bytes:
        """A valid one-pixel PNG whose header claims another size (no pixels are ever allocated)."""
        buffer = io.BytesIO()
        Image.new("L", (1, 1)).save(buffer, format="PNG")
        data = bytearray(buffer.getvalue())
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return bytes(data)

    folder = tmp_path / "gallery"
    folder.mkdir()
    under, over = folder / "under.png", folder / "over.png"
    under.write_bytes(png_claiming(10_000, MAX_PIXELS // 10_000))  # the limit itself, above Pillow's own 89.5M
    over.write_bytes(png_claiming(10_000, MAX_PIXELS // 10_000 + 1))
    with pytest.raises(ImageLoadError) as decoded:
        decode_image(under.read_bytes(), under)
    assert "decompression bomb" not in decoded.value.reason  # it fails later, for its missing pixels
    with pytest.raises(ImageLoadError, match="decompression bomb.*100,000,000"):
        decode_image(over.read_bytes(), over)
    reasons = {os.path.basename(f.path): f.reason for f in open_workspace().import_paths([folder]).failed}
    assert "decompression bomb" not in reasons["under.png"]
    assert reasons["over.png"].startswith("decompression bomb") and "100,000,000" in reasons["over.png"]
