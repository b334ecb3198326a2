"""Video files before the detector sees them: sampling by the container's timestamps (a variable
frame rate included), decoding one frame at a time, and every kind of bad file refused in one line
that names it."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.video.source import FrameSampler, SamplingPosition, VideoError, check_sample_rate, probe
from tests.conftest import SHARED_DATA
from tests.video_clips import time_scale, with_codec, with_frame_durations, write_clip


def numbered_frames(count: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """Frames whose brightness says their number (i * 8), to check which frame was sampled."""
    width, height = size
    return [np.full((height, width, 3), i * 8, np.uint8) for i in range(count)]


def frame_number(pixels: np.ndarray) -> int:
    return int(round(float(pixels.mean()) / 8))


def test_frames_are_sampled_at_the_rate_asked_by_their_timestamps(tmp_path):
    clip = write_clip(tmp_path / "ten.mp4", numbered_frames(30), fps=10)
    info = probe(clip)
    assert (info.width, info.height, info.declared_frames, info.declared_fps) == (160, 120, 30, 10)
    sampled = list(FrameSampler(info, 2.0).frames())
    assert [f.index for f in sampled] == [0, 5, 10, 15, 20, 25]
    assert [f.timestamp_ms for f in sampled] == pytest.approx([0, 500, 1000, 1500, 2000, 2500])
    assert [frame_number(f.pixels) for f in sampled] == [0, 5, 10, 15, 20, 25]  # the frame the time names
    assert all(f.pixels.shape == (120, 160, 3) and f.pixels.dtype == np.uint8 for f in sampled)
    # a rate above the video's own takes every frame once
    assert [f.index for f in FrameSampler(info, 30.0).frames()] == list(range(30))


def test_a_variable_frame_rate_is_sampled_by_the_container_times(tmp_path):
    clip = write_clip(tmp_path / "cfr.mp4", numbered_frames(30), fps=10)
    ticks = time_scale(clip)
    # ten frames 0.1 s apart, ten 0.5 s apart (a camera that slowed down), ten 0.1 s apart again
    vfr = with_frame_durations(clip, tmp_path / "vfr.mp4", [ticks // 10] * 10 + [ticks // 2] * 10 + [ticks // 10] * 10)
    info = probe(vfr)
    sampled = list(FrameSampler(info, 1.0).frames())
    times = [round(f.timestamp_ms) for f in sampled]
    # one frame per second of recorded time: 0, 1.0, 2.0 ... 6.0 s; frame count / rate would
    # have put the samples at frames 0, 4, 8, ... (the container's average rate is 30 frames in 7 s)
    assert times == [0, 1000, 2000, 3000, 4000, 5000, 6000]
    assert [f.index for f in sampled] == [0, 10, 12, 14, 16, 18, 20]
    assert [frame_number(f.pixels) for f in sampled] == [0, 10, 12, 14, 16, 18, 20]


def test_sampling_resumes_where_it_stood(tmp_path):
    info = probe(write_clip(tmp_path / "ten.mp4", numbered_frames(30), fps=10))
    sampler = FrameSampler(info, 2.0)
    frames = sampler.frames()
    first = [next(frames) for _ in range(3)]
    stood = sampler.position
    frames.close()
    assert (stood.next_index, stood.next_due_ms) == (11, 1500)
    rest = list(FrameSampler(info, 2.0, SamplingPosition(stood.next_index, stood.next_due_ms)).frames())
    assert [f.index for f in first + rest] == [0, 5, 10, 15, 20, 25]


def test_a_large_video_is_decoded_one_frame_at_a_time(tmp_path):
    """A 4K recording is streamed: iterating holds about one frame, never the video."""
    frames = [np.full((2160, 3840, 3), i * 20, np.uint8) for i in range(12)]
    info = probe(write_clip(tmp_path / "4k.mp4", frames, fps=10))
    del frames
    assert (info.width, info.height) == (3840, 2160)
    one_frame = 3840 * 2160 * 3
    sampler = FrameSampler(info, 10.0)
    tracemalloc.start()
    try:
        count = 0
        for frame in sampler.frames():
            count += 1
            assert sampler.decoded == frame.index + 1  # nothing decoded ahead of what was handed out
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 12
    assert peak < 4 * one_frame  # the frame handed out, its conversion, and little else (the video is 12)


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), 31.0])
def test_a_sample_rate_out_of_range_is_refused(rate):
    with pytest.raises(Exception, match="--fps"):
        check_sample_rate(rate)


def bad_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input with a phrase its one-line error must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = numbered_frames(30)
    good_mp4 = write_clip(folder / "good.mp4", frames, fps=10)
    good_avi = write_clip(folder / "good.avi", frames, fps=10, fourcc="MJPG")
    data = good_mp4.read_bytes()
    cut_index = folder / "cut_before_index.mp4"  # the frames whole, the index a recorder writes last never came
    cut_index.write_bytes(data[: data.index(b"moov") - 4])
    cut_frames = folder / "cut_in_frames.mp4"
    cut_frames.write_bytes(data[: len(data) // 2])
    # the index first (as files made for streaming have it), the frames cut off
    pets = SHARED_DATA / "video" / "pets2009_s2l1_view001_480x360.mp4"
    faststart = folder / "cut_frames.mp4"
    if pets.is_file():
        with open(pets, "rb") as handle:
            faststart.write_bytes(handle.read(400_000))
    cut_avi = folder / "cut.avi"
    cut_avi.write_bytes(good_avi.read_bytes()[: good_avi.stat().st_size // 2])
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = folder / "empty.mov"
    empty.write_bytes(b"")
    jpeg = folder / "photo.mkv"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 2000)
    unknown_codec = with_codec(good_avi, folder / "unknown_codec.avi", b"ZZ9Q")
    import cv2

    zero = folder / "zero.mp4"  # a recorder opened and closed with no frame
    cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120)).release()
    folder_named = folder / "folder.mp4"
    folder_named.mkdir()
    cases = {
        "truncated (no index)": (cut_index, "no 'moov' index"),
        "truncated in the frames": (cut_frames, "truncated: its 'mdat' box needs"),
        "truncated AVI": (cut_avi, "truncated"),
        "not a video": (text, "not a video"),
        "empty": (empty, "empty file"),
        "an image named .mkv": (jpeg, "not a video"),
        "undecodable codec": (unknown_codec, "('ZZ9Q') cannot be decoded"),
        "zero frames": (zero, "no frames"),
        "missing": (folder / "gone.mp4", "no such file"),
        "a folder": (folder_named, "not a regular file"),
    }
    if faststart.is_file():
        cases["truncated, index first"] = (faststart, "truncated: its 'mdat' box needs")
    return cases


def test_every_bad_video_is_refused_in_one_line_naming_it(tmp_path):
    cases = bad_videos(tmp_path / "bad")
    for what, (path, phrase) in cases.items():
        with pytest.raises(VideoError) as raised:
            probe(path)
        message = str(raised.value)
        assert message.startswith(f"{path.absolute()}: "), what
        assert phrase in message, f"{what}: {message}"
        assert "\n" not in message, what
