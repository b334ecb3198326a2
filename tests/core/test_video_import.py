"""Video import end to end on generated clips (real people's photos walking over a moving
background), with the bundled detector and model: one walking person is one track and one crop,
its provenance is stored and shown, an import resumes where it stopped, and removal is per video."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from core.catalogue.catalogue import Catalogue
from core.catalogue.migrations import LATEST_VERSION
from core.cli.commands import main
from core.video.detector import DetectorError, PersonDetector, default_detector_dir
from core.workspace import Workspace
from tests.conftest import PKU_ROOT
from tests.core.test_catalogue import columns, frozen_catalogue
from tests.video_clips import people_photos, walking_frames, write_clip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundled(tmp_path, model_dir):
    """Open (or reopen) a workspace with the bundled model; all closed at the end."""
    opened = []

    def _open(data: Path | None = None) -> Workspace:
        workspace = Workspace(data or tmp_path / "data", model_dir, "cpu")
        opened.append(workspace)
        return workspace

    yield _open
    for workspace in opened:
        workspace.close()


@pytest.fixture
def one_walker(tmp_path) -> Path:
    """Six seconds of one person walking across the frame, 10 frames/s."""
    return write_clip(tmp_path / "walker.mp4", walking_frames(people_photos(1), seconds=6))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def crops(data: Path) -> list[tuple]:
    """Every catalogued crop with its provenance: (track, frame, time, box, detector, photo sha256)."""
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        return db.execute(
            "SELECT c.track_id, c.frame_index, c.timestamp_ms, c.x0, c.y0, c.x1, c.y1, c.detector, p.sha256 "
            "FROM video_crops c JOIN photos p ON p.id = c.photo_id ORDER BY c.track_id"
        ).fetchall()


def test_one_walking_person_is_one_track_and_one_crop_with_its_provenance(bundled, one_walker, tmp_path):
    workspace = bundled()
    (summary,) = workspace.videos.import_videos([one_walker])
    assert summary.status == "imported" and summary.frames_sampled == 12  # 6 s at 2 frames/s
    assert summary.detections >= 8  # the person is found in most frames ...
    assert (summary.tracks, summary.added) == (1, 1)  # ... and followed as one person: one crop
    assert summary.sha256 == sha256(one_walker)

    (photo_id,) = workspace.photo_ids().tolist()
    source = workspace.videos.sources([photo_id])[photo_id]
    assert (source.video_sha256, source.video_path) == (sha256(one_walker), str(one_walker))
    assert source.track_id == 1 and source.frame_size == (640, 360)
    assert source.frame_index % 5 == 0 and source.timestamp_ms == pytest.approx(source.frame_index * 100)
    assert source.time_text == f"00:00:0{source.frame_index // 10}.{source.frame_index % 10}00"
    x0, y0, x1, y1 = source.box
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360 and y1 - y0 > 150  # a whole person, 220 px pasted
    assert source.detector == "ssdlite-mobilenetv2-pedestrian" and 0.4 <= source.score <= 1

    # the crop is a photo like any other: its file, content hash, thumbnail, embedding, index entry
    record = workspace.photo(photo_id)
    crop = Path(record.path)
    assert crop.is_file() and crop.is_relative_to(tmp_path / "data") and record.sha256 == sha256(crop)
    assert record.source_folder == str(one_walker)  # listed (and removed) per video, as a folder
    assert stat.S_IMODE(crop.stat().st_mode) == 0o600 and stat.S_IMODE(crop.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(crop.parent.parent.stat().st_mode) == 0o700
    frame_source, frame = workspace.videos.frame(photo_id)
    assert frame_source == source and frame[:2] == b"\xff\xd8"  # the frame, as stored, beside the crop
    assert stat.S_IMODE(Path(source.frame_file).stat().st_mode) == 0o600
    assert len(workspace.index) == 1 and workspace.verify(files=True).ok
    assert [f.folder for f in workspace.folders()] == [str(one_walker)]

    # a search ranks it and says where it was seen
    (result,) = workspace.search([people_photos(1)[0]], top_k=5)
    assert result.candidates[0].photo_id == photo_id and result.candidates[0].video == source


def test_importing_again_changes_nothing_and_a_moved_video_is_followed(bundled, one_walker, tmp_path):
    workspace = bundled()
    workspace.videos.import_videos([one_walker])
    before = crops(tmp_path / "data")
    (again,) = workspace.videos.import_videos([one_walker])
    assert again.status == "unchanged" and again.added == 0
    moved = tmp_path / "elsewhere" / "renamed.mp4"
    moved.parent.mkdir()
    shutil.move(one_walker, moved)
    (followed,) = workspace.videos.import_videos([moved])
    assert followed.status == "unchanged" and crops(tmp_path / "data") == before
    (photo_id,) = workspace.photo_ids().tolist()
    assert workspace.videos.sources([photo_id])[photo_id].video_path == str(moved)
    assert [f.folder for f in workspace.folders()] == [str(moved)]


def test_a_cancelled_import_resumes_with_the_same_tracks(bundled, tmp_path):
    """Cancelled mid-way (after a chunk was committed, with tracks open), the next import goes on
    from there with those tracks, and ends with exactly what an import never stopped ends with."""
    clip = write_clip(tmp_path / "two.mp4", walking_frames(people_photos(2), seconds=6))
    reference = bundled(tmp_path / "reference")
    (whole,) = reference.videos.import_videos([clip], chunk_samples=4)
    assert whole.tracks >= 2 and whole.frames_sampled == 12

    workspace = bundled()
    cancel = threading.Event()

    def stop_after_a_commit(progress) -> None:
        if progress.frames_done >= 6:  # the first chunk (4 samples) is committed, the second is not
            cancel.set()

    (first,) = workspace.videos.import_videos([clip], progress=stop_after_a_commit, cancel=cancel, chunk_samples=4)
    assert first.status == "cancelled" and 4 <= first.frames_sampled < 12
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        (open_tracks,) = db.execute("SELECT open_tracks FROM videos").fetchone()
    assert json.loads(open_tracks)["tracks"]  # someone was being followed when it stopped
    (rest,) = workspace.videos.import_videos([clip], chunk_samples=4)
    assert rest.status == "resumed"
    assert first.frames_sampled + rest.frames_sampled == whole.frames_sampled
    assert first.added + rest.added == whole.added
    assert crops(tmp_path / "data") == crops(tmp_path / "reference")  # the same tracks, crops and provenance
    assert workspace.verify(files=True).ok


def test_removing_a_video_removes_its_crops_and_where_its_import_stood(bundled, one_walker, make_photos, tmp_path):
    workspace = bundled()
    photos = make_photos(2)
    workspace.import_paths([photos[0].parent])
    workspace.videos.import_videos([one_walker])
    folder = Path(workspace.photo(max(workspace.photo_ids().tolist())).path).parent
    assert workspace.videos.remove_source(str(one_walker)) == 1
    assert not folder.exists()  # the crops and frames SketchSearch wrote
    assert workspace.catalogue.count_photos() == 2 and crops(tmp_path / "data") == []
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM videos").fetchone() == (0,)
        (payload,) = db.execute("SELECT payload_json FROM audit_log WHERE kind = 'remove video'").fetchone()
    assert json.loads(payload)["video"] == str(one_walker) and len(json.loads(payload)["photos"]) == 1
    assert workspace.casework.verify_audit().ok
    (again,) = workspace.videos.import_videos([one_walker])  # imported afresh, not "unchanged"
    assert again.status == "imported" and again.added == 1
    assert workspace.videos.remove_source(str(photos[0].parent)) == 2  # a folder is removed as before


def test_a_video_cut_off_keeps_what_was_read_and_says_so(bundled, tmp_path, capsys):
    whole = write_clip(tmp_path / "whole.mkv", walking_frames(people_photos(1), seconds=8))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    data = tmp_path / "data"
    code = main(["--data-dir", str(data), "import", str(cut)])
    out, err = capsys.readouterr()
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {cut}: truncated or damaged: decoding stopped at frame ")
    assert "stopped" in out
    kept = crops(data)
    assert len(kept) == 1 and kept[0][1] < 50  # the person seen in the part that was read is kept
    workspace = bundled(data)
    (again,) = workspace.videos.import_videos([cut])
    assert again.status == "unchanged" and "truncated" in again.problem


def test_the_command_line_imports_a_video_and_search_json_says_where_each_crop_was_seen(tmp_path, capsys):
    person = people_photos(1)[0]
    clip = write_clip(tmp_path / "walker.mov", walking_frames([person], seconds=6))
    data = ["--data-dir", str(tmp_path / "data")]
    assert main([*data, "import", str(clip), "--fps", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (video,) = summary["videos"]
    assert summary["added"] == video["added"] == 1 and video["frames_sampled"] == 12
    assert (video["status"], video["sha256"]) == ("imported", sha256(clip))

    sketch = PKU_ROOT / "sketch" / "100.jpg"  # the person pasted into the clip (PKU-Sketch id 100)
    assert main([*data, "search", str(sketch), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    (candidate,) = result["candidates"]
    seen = candidate["video"]
    assert seen["video_path"] == str(clip) and seen["video_sha256"] == sha256(clip)
    assert seen["time"] == "00:00:0" + f"{seen['frame_index'] / 10:.3f}" and seen["track_id"] == 1
    assert set(seen) >= {"frame_index", "timestamp_ms", "box", "detector", "detector_score", "frame_size"}
    assert main([*data, "search", str(sketch)]) == 0
    assert f"seen in {clip.name} at {seen['time']}" in capsys.readouterr().out


def test_bad_videos_are_refused_in_one_line_and_the_gallery_is_untouched(tmp_path, make_photos, capsys):
    from tests.core.test_video_source import bad_videos

    data = tmp_path / "data"
    photos = make_photos(3)
    assert main(["--data-dir", str(data), "import", str(photos[0].parent)]) == 0
    capsys.readouterr()
    good = write_clip(tmp_path / "good.mp4", walking_frames(people_photos(1), seconds=2))
    for what, (path, phrase) in bad_videos(tmp_path / "bad").items():
        if path.is_dir():
            continue  # a folder named like a video is a folder of photos to the command line
        # a good video beside the bad one: nothing is imported until every one is checked
        code = main(["--data-dir", str(data), "import", str(good), str(path)])
        out, err = capsys.readouterr()
        assert code == 2, what
        assert err.count("\n") == 1 and err.startswith(f"error: {path.absolute()}: ") and phrase in err, err
        assert out == "", what
        with sqlite3.connect(data / "catalogue.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM photos").fetchone() == (3,), what
            assert db.execute("SELECT count(*) FROM videos").fetchone() == (0,), what
    assert not (data / "video-crops").exists()  # no crop was written either
    assert main(["--data-dir", str(data), "verify", "--files"]) == 0


def test_the_import_video_entry_binds_its_runs_record_and_an_edit_of_it_is_detected(bundled, one_walker, tmp_path):
    workspace = bundled()
    (summary,) = workspace.videos.import_videos([one_walker])
    (entry,) = [e for e in workspace.casework.audit_entries() if e.kind == "import video"]
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        roots, status, added = db.execute(
            "SELECT roots, status, added FROM import_runs WHERE id = ?", (entry.payload["import_id"],)
        ).fetchone()
    # the path, status and counts are the run's record, bound by its hash; the entry adds the video's own
    assert (json.loads(roots), status, added) == ([str(one_walker.absolute())], "done", summary.added)
    assert sorted(entry.payload) == [
        "frames_sampled",
        "import_id",
        "import_run_sha256",
        "os_account",
        "photos_after",
        "problem",
        "sha256",
        "video_status",
    ]
    assert entry.payload["sha256"] == summary.sha256 and entry.payload["video_status"] == "imported"
    assert workspace.casework.verify_audit().ok
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        db.execute("UPDATE import_runs SET added = added + 1 WHERE id = ?", (entry.payload["import_id"],))
    check = workspace.casework.verify_audit()
    assert not check.ok and f"import run {entry.payload['import_id']} differs" in check.problem


def test_the_report_lists_where_a_candidate_was_seen(bundled, one_walker, tmp_path):
    workspace = bundled()
    workspace.videos.import_videos([one_walker])
    workspace.desk.new_case("V-1", "video")
    sketch = PKU_ROOT / "sketch" / "100.jpg"
    workspace.searcher.search_file_recorded(sketch, top_k=3, case_id=workspace.casework.case("V-1").id)
    report = workspace.desk.export_case_report("V-1", tmp_path / "report.pdf")
    text = " ".join("\n".join(page.extract_text() for page in PdfReader(report).pages).split())
    (photo_id,) = workspace.photo_ids().tolist()
    source = workspace.videos.sources([photo_id])[photo_id]
    assert f"Seen in video walker.mp4 at {source.time_text} (frame {source.frame_index})" in text
    assert f"track 1; found by {source.detector}" in text


def test_the_detector_is_refused_when_its_sha256_is_not_the_recorded_one(tmp_path):
    folder = tmp_path / "detector"
    shutil.copytree(default_detector_dir(), folder)
    model = folder / "ssdlite_pedestrian.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(DetectorError) as refused:
        PersonDetector(folder)
    message = str(refused.value)
    assert message.startswith(f"{model}: sha256 ") and "reinstall SketchSearch" in message and "\n" not in message
    assert PersonDetector().sha256 == sha256(default_detector_dir() / "ssdlite_pedestrian.onnx")


def test_a_version_7_catalogue_gains_the_video_tables_with_nothing_lost(tmp_path):
    old = frozen_catalogue(7, tmp_path)
    catalogue = Catalogue(old)
    assert [catalogue.photo(i).path for i in (1, 2)] == ["/gallery/a.jpg", "/gallery/b.jpg"]
    assert catalogue.photo(1).attributes["gender"].value == "male"
    catalogue.close()
    with sqlite3.connect(old / Catalogue.FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (LATEST_VERSION,)
        assert db.execute("SELECT count(*) FROM videos").fetchone() == (0,)
    fresh = tmp_path / "fresh"
    Catalogue(fresh).close()
    assert columns(old / Catalogue.FILE_NAME) == columns(fresh / Catalogue.FILE_NAME)
    with sqlite3.connect(old / Catalogue.FILE_NAME) as db, sqlite3.connect(fresh / Catalogue.FILE_NAME) as new:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_video%'"
        assert db.execute(query).fetchall() == new.execute(query).fetchall() == [("ix_video_crops_video_id",)]


@pytest.mark.slow
def test_kill_9_mid_video_resumes_where_it_stopped_and_never_duplicates_a_track(bundled, tmp_path):
    from tests.core.test_cli import count_photos, kill_9_once_committed, logged

    people = people_photos(3)
    # one person after another, so that tracks end (and are committed) while the video goes on
    frames = [f for i, p in enumerate(people) for f in walking_frames([p], seconds=4, seed=i)]
    clip = write_clip(tmp_path / "three.mp4", frames)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "core.cli", "--data-dir", str(data), "import", str(clip), "--fps", "5"]
    env = {**os.environ, "SKETCHSEARCH_DEVICE": "cpu"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = kill_9_once_committed(process, data / "catalogue.sqlite3", 1)
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        (next_frame, status) = db.execute("SELECT next_frame, status FROM videos").fetchone()
    assert status == "running" and 0 < next_frame < 120 and killed_at >= 1
    assert sum(b["added"] for b in logged(data, "video batch")) == killed_at  # every committed chunk is logged

    finished = subprocess.run(command + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    (video,) = json.loads(finished.stdout)["videos"]
    assert video["status"] == "resumed" and video["frames_sampled"] < 60  # went on from where it stood

    reference = bundled(tmp_path / "reference")
    (whole,) = reference.videos.import_videos([clip], samples_per_second=5)
    assert crops(data) == crops(tmp_path / "reference")  # the same tracks and crops: none twice, none lost
    assert count_photos(data / "catalogue.sqlite3") == whole.added == killed_at + video["added"]
    assert sum(b["added"] for b in logged(data, "video batch")) == whole.added
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        assert db.execute("SELECT status FROM import_runs ORDER BY id").fetchall() == [("interrupted",), ("done",)]
    for check in (["verify", "--files"], ["audit", "verify"]):
        result = subprocess.run(command[:5] + check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
