"""A real clip (../shared/data/video/, never copied into the repository) imported with the command
line: person crops catalogued with their provenance, shown by `search --json`, ranked by a sketch."""

from __future__ import annotations

import json

import pytest

from core.cli.commands import main
from tests.conftest import PKU_ROOT, SHARED_DATA

CLIP = SHARED_DATA / "video" / "intel_one_by_one_person_detection.mp4"
CLIP_SHA256 = "a5964aa259099a482a8b360ffc2c57b5a30f84d5919236a4dad01f8e929ac07c"


@pytest.mark.slow
def test_a_real_clip_is_imported_and_a_sketch_ranks_its_crops_with_where_they_were_seen(tmp_path, capsys):
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} not found (research data lives beside the checkout)")
    data = ["--data-dir", str(tmp_path / "data")]
    assert main([*data, "import", str(CLIP), "--json"]) == 0
    (video,) = json.loads(capsys.readouterr().out)["videos"]
    assert (video["status"], video["sha256"]) == ("imported", CLIP_SHA256)
    assert video["frames_sampled"] == 279  # 139.4 s at 2 frames/s
    # six people walk in one after another; the detector misses many of their frames and a person
    # may be split into a few tracks (benchmarks/results/video.md), but each is one crop per track
    assert 6 <= video["added"] == video["tracks"] <= 30

    sketch = PKU_ROOT / "sketch" / "1.jpg"
    assert main([*data, "search", str(sketch), "--top", "50", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    candidates = result["candidates"]
    assert len(candidates) == video["added"]  # every crop is ranked
    assert [c["rank"] for c in candidates] == list(range(1, len(candidates) + 1))
    assert all(a["score"] >= b["score"] for a, b in zip(candidates, candidates[1:]))
    tracks = set()
    for candidate in candidates:
        seen = candidate["video"]
        assert seen["video_sha256"] == CLIP_SHA256 and seen["video_path"] == str(CLIP)
        assert seen["frame_size"] == [768, 432] and 0 <= seen["timestamp_ms"] <= 139_400
        assert seen["frame_index"] == round(seen["timestamp_ms"] / 100)  # the file's 10 frames/s
        x0, y0, x1, y1 = seen["box"]
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < y1 <= 432 and y1 - y0 >= 40
        tracks.add(seen["track_id"])
    assert len(tracks) == len(candidates)  # one crop per track
