"""Small videos the tests make themselves with OpenCV: real people's photos (PKU-Sketch, read from
the shared data at test time, never stored in the repository) walking over a moving background."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PKU_ROOT


def people_photos(count: int, start: int = 0) -> list[np.ndarray]:
    """``count`` photos of different people (one per person id), RGB."""
    folder = PKU_ROOT / "photo"
    if not folder.is_dir():
        pytest.skip(f"PKU-Sketch photos not found at {folder} (research data lives beside the checkout)")
    by_person: dict[str, Path] = {}
    for path in sorted(folder.glob("*.jpg")):
        by_person.setdefault(path.name.split("_")[0], path)
    chosen = list(by_person.values())[start : start + count]
    return [np.asarray(Image.open(p).convert("RGB")) for p in chosen]


def background(size: tuple[int, int], shift: int, seed: int = 0) -> np.ndarray:
    """A textured ground and wall, panned ``shift`` pixels: the scene moves a little, as a camera's does."""
    width, height = size
    rng = np.random.default_rng(seed)
    wide = rng.integers(90, 170, size=(height // 8 + 1, (width + 400) // 8 + 1, 3), dtype=np.uint8)
    import cv2

    texture = cv2.resize(wide, ((width + 400) // 8 * 8 + 8, height // 8 * 8 + 8), interpolation=cv2.INTER_LINEAR)
    texture[: height // 3] = (texture[: height // 3] * 0.6 + np.array([200, 200, 190]) * 0.4).astype(np.uint8)
    start = shift % 400
    return np.ascontiguousarray(texture[:height, start : start + width])


def paste(frame: np.ndarray, photo: np.ndarray, x: int, bottom: int, height: int) -> None:
    import cv2

    width = max(1, round(photo.shape[1] * height / photo.shape[0]))
    person = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    top = bottom - height
    x0, y0 = max(x, 0), max(top, 0)
    x1, y1 = min(x + width, frame.shape[1]), min(bottom, frame.shape[0])
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = person[y0 - top : y1 - top, x0 - x : x1 - x]


def walking_frames(
    people: Sequence[np.ndarray],
    seconds: float = 6.0,
    fps: float = 10.0,
    size: tuple[int, int] = (640, 360),
    person_height: int = 220,
    seed: int = 0,
) -> Iterable[np.ndarray]:
    """Each person walks left to right across the frame, one after another's start, at their own row."""
    count = int(round(seconds * fps))
    width, height = size
    for i in range(count):
        frame = background(size, shift=i * 2, seed=seed)
        for p, photo in enumerate(people):
            progress = i / max(count - 1, 1)
            x = int(-60 + progress * (width - 40) * (1 + p * 0.15)) - p * 200
            paste(frame, photo, x, bottom=height - 10 - p * 30, height=person_height - p * 20)
        yield frame


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    import cv2

    writer = None
    for frame in frames:
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
            assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    if writer is not None:
        writer.release()
    return path


# -- MP4 surgery: files OpenCV cannot write itself ------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int):
    offset = start
    while offset + 8 <= end:
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        yield offset, size, kind
        offset += size


def _rewrite(data: bytes, start: int, end: int, kind_wanted: bytes, new_payload) -> bytes:
    """``data[start:end]`` with the box ``kind_wanted`` (inside containers) given a new body, and
    every enclosing box's size corrected."""
    out = bytearray()
    for offset, size, kind in _boxes(data, start, end):
        if kind == kind_wanted:
            body = new_payload(data[offset + 8 : offset + size])
            out += (8 + len(body)).to_bytes(4, "big") + kind + body
        elif kind in _CONTAINERS:
            inner = _rewrite(data, offset + 8, offset + size, kind_wanted, new_payload)
            out += (8 + len(inner)).to_bytes(4, "big") + kind + inner
        else:
            out += data[offset : offset + size]
    return bytes(out)


def with_frame_durations(src: Path, dst: Path, durations: Sequence[int]) -> Path:
    """An MP4 of variable frame rate: frame i lasts ``durations[i]`` ticks of its track's time scale
    (the frames themselves unchanged). OpenCV's writer puts 'moov' after 'mdat', so changing its size
    moves no frame."""
    data = src.read_bytes()
    order = [kind for _, _, kind in _boxes(data, 0, len(data))]
    assert order.index(b"mdat") < order.index(b"moov"), "expected the index after the frames"

    def stts(body: bytes) -> bytes:
        return (
            body[:4]
            + len(durations).to_bytes(4, "big")
            + b"".join((1).to_bytes(4, "big") + int(d).to_bytes(4, "big") for d in durations)
        )

    data = _rewrite(data, 0, len(data), b"stts", stts)
    # the edit list would still end the presentation at the old duration: leave it out
    data = _rewrite(data, 0, len(data), b"edts", lambda body: b"")
    dst.write_bytes(data)
    return dst


def with_codec(src: Path, dst: Path, fourcc: bytes) -> Path:
    """An AVI with its video stream's codec renamed (in its stream header and its format): a
    container every reader opens, holding a stream no decoder knows."""
    data = src.read_bytes()
    header = data[:4096]
    assert header.count(b"MJPG") >= 1, "expected an MJPG AVI"
    dst.write_bytes(header.replace(b"MJPG", fourcc).replace(b"mjpg", fourcc.lower()) + data[4096:])
    return dst


def time_scale(path: Path) -> int:
    """The video track's time scale (ticks per second), from its 'mdhd'."""
    data = path.read_bytes()

    def find(start: int, end: int):
        for offset, size, kind in _boxes(data, start, end):
            if kind == b"mdhd":
                body = data[offset + 8 : offset + size]
                return int.from_bytes(body[12:16], "big") if body[0] == 0 else int.from_bytes(body[20:24], "big")
            if kind in _CONTAINERS:
                found = find(offset + 8, offset + size)
                if found:
                    return found
        return None

    return find(0, len(data))
