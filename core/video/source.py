"""A video file: checked before anything is imported from it (one line naming the file and what is
wrong), then decoded frame by frame, never loaded whole, and sampled at a rate by the timestamps
the container gives (a variable frame rate is sampled as recorded, not as frame count / rate)."""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.errors import SketchSearchError
from core.common.types import format_time

# what OpenCV's bundled FFmpeg decodes and this import accepts
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv"})
DEFAULT_SAMPLES_PER_SECOND = 2.0
MAX_SAMPLES_PER_SECOND = 30.0


class VideoError(SketchSearchError):
    """A video that cannot be imported (or not whole): the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_video_name(path: str | Path) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_SUFFIXES


def check_sample_rate(samples_per_second: float) -> float:
    if not 0 < samples_per_second <= MAX_SAMPLES_PER_SECOND:  # NaN fails too
        raise SketchSearchError(
            f"--fps {samples_per_second}: frames sampled per second must be above 0 and at most "
            f"{MAX_SAMPLES_PER_SECOND:g}"
        )
    return float(samples_per_second)


def _quiet_ffmpeg():
    """OpenCV's video module, with its own and FFmpeg's messages off: a damaged file is reported in
    one line by this module, not by lines of decoder noise on stderr."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when a capture opens
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def _declared_codec(path: str, container: str) -> str:
    """The four-character code the container names for its video stream, read from its header
    (best effort: '' when not found), to say which codec could not be decoded."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if container == "avi":
        at = head.find(b"vids")  # the video stream header: 'vids', then its codec
        code = head[at + 4 : at + 8] if at >= 0 else b""
    elif container == "mp4":
        at = head.find(b"stsd")
        code = head[at + 16 : at + 20] if at >= 0 else b""
    else:
        code = b""
    text = code.decode("latin-1").strip("\0 ")
    return text if text.isprintable() else ""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    size_bytes: int
    mtime_ns: int
    width: int
    height: int
    declared_fps: float  # what the container declares; 0 when it does not
    declared_frames: int  # the container's frame count (an estimate for some containers); 0 unknown
    codec: str  # the stream's four-character code

    @property
    def declared_ms(self) -> float:
        return self.declared_frames / self.declared_fps * 1000 if self.declared_fps > 0 else 0.0

    def expected_samples(self, samples_per_second: float) -> int:
        """About how many frames sampling at this rate gives (for progress): at most one per frame."""
        if self.declared_ms <= 0:
            return 0
        return max(1, min(self.declared_frames, int(self.declared_ms / 1000 * samples_per_second) + 1))


# -- the container, read before the decoder sees it ---------------------------------------------


def _container(path: str, size: int) -> str:
    """Which container the first bytes say this is ('mp4', 'avi', 'mkv'), or a VideoError."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "mkv"
    raise VideoError(path, "not a video (no MP4, QuickTime, AVI or Matroska header)")


def _check_mp4_boxes(path: str, size: int) -> None:
    """The top-level boxes of an MP4/QuickTime file: one that runs past the end of the file, or no
    'moov' (the index every frame is found by, written last by most recorders), means the file was
    cut off before it was finished."""
    found_index = False
    offset = media = 0
    with open(path, "rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                raise VideoError(path, f"truncated: the file ends inside a box header at byte {offset:,}")
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:
                if len(header) < 16:
                    raise VideoError(path, f"truncated: the file ends inside a box header at byte {offset:,}")
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:
                length = size - offset  # the last box, to the end of the file
            if length < 8:
                raise VideoError(path, f"damaged: a box at byte {offset:,} has an impossible length ({length})")
            name = kind.decode("latin-1")
            if offset + length > size:
                raise VideoError(
                    path,
                    f"truncated: its '{name}' box needs {offset + length:,} bytes but the file has {size:,} "
                    "(cut off before it was finished)",
                )
            found_index |= kind == b"moov"
            media += length - 8 if kind == b"mdat" else 0
            offset += length
    if not found_index:
        raise VideoError(path, "truncated or unfinished: it has no 'moov' index (the recording was not closed)")
    if media == 0:
        raise VideoError(path, "no frames (a video of zero length)")


def _check_avi_size(path: str, size: int) -> None:
    with open(path, "rb") as handle:
        riff = struct.unpack("<I", handle.read(8)[4:8])[0]
    if riff + 8 > size + 1:  # RIFF pads to an even length
        raise VideoError(path, f"truncated: its header says {riff + 8:,} bytes but the file has {size:,}")


def _stat_regular(path: str) -> os.stat_result:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise VideoError(path, "no such file") from None
    except OSError as exc:
        raise VideoError(path, f"unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise VideoError(path, "not a regular file")
    if info.st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    return info


def probe(path: str | Path) -> VideoInfo:
    """Check a video before importing it: a regular file, a known container whole to its end (as
    far as its header says), a stream FFmpeg decodes, and at least one frame. Reads the header and
    the first frame only."""
    path = str(Path(path).absolute())
    info = _stat_regular(path)
    try:
        container = _container(path, info.st_size)
        if container == "mp4":
            _check_mp4_boxes(path, info.st_size)
        elif container == "avi":
            _check_avi_size(path, info.st_size)
    except OSError as exc:
        raise VideoError(path, f"unreadable ({exc.strerror or exc})") from None
    cv2 = _quiet_ffmpeg()
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            codec = _declared_codec(path, container)
            stream = f"its video stream ('{codec}')" if codec else "its video stream"
            raise VideoError(
                path, f"{stream} cannot be decoded here (no decoder for that codec, or the file is damaged)"
            )
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\0 ") or "unknown"
        codec = codec if codec.isprintable() else f"0x{fourcc:08x}"
        frames = int(max(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        fps = fps if np.isfinite(fps) and fps > 0 else 0.0
        if not capture.grab():
            if frames == 0:
                raise VideoError(path, "no frames (a video of zero length)")
            raise VideoError(path, f"its '{codec}' stream cannot be decoded (no decoder for it, or damaged)")
        ok, first = capture.retrieve()
        if not ok or first is None or first.ndim != 3:
            raise VideoError(path, f"its '{codec}' stream cannot be decoded (no picture from the first frame)")
        height, width = first.shape[:2]
    finally:
        capture.release()
    return VideoInfo(path, info.st_size, info.st_mtime_ns, width, height, fps, frames, codec)


# -- frames --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledFrame:
    index: int  # the frame's position in decoding order, from 0
    timestamp_ms: float  # its presentation time, from the container
    pixels: np.ndarray  # H x W x 3 uint8 RGB


@dataclass
class SamplingPosition:
    """Where sampling goes on: the next frame to decode and the time the next sample is due. A
    resumed import starts here."""

    next_index: int = 0
    next_due_ms: float = 0.0
    last_timestamp_ms: float = -1.0


class FrameSampler:
    """Decodes ``info``'s frames one at a time from ``position`` and yields one frame each
    ``1 / samples_per_second`` seconds of presentation time: the first frame whose timestamp reaches
    each multiple of that interval. Frames between samples are decoded (a compressed stream has to
    be) but never converted or kept. :attr:`position` says where to resume once the frames yielded
    so far are handled."""

    def __init__(self, info: VideoInfo, samples_per_second: float, position: SamplingPosition | None = None):
        self.info = info
        self.interval_ms = 1000.0 / check_sample_rate(samples_per_second)
        self.position = position or SamplingPosition()
        self.decoded = self.position.next_index
        self.last_decoded_ms = -1.0

    def frames(self, cancel: threading.Event | None = None) -> Iterator[SampledFrame]:
        cv2 = _quiet_ffmpeg()
        path = self.info.path
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise VideoError(path, "cannot be opened by the video decoder any more (changed or removed?)")
        try:
            index = 0
            # to resume, decode up to the next frame: seeking by frame number is not exact for every
            # codec and never for a variable frame rate
            while index < self.position.next_index:
                if cancel is not None and cancel.is_set():
                    return
                if not capture.grab():
                    raise VideoError(
                        path,
                        f"ends at frame {index:,}, before the frame {self.position.next_index:,} an "
                        "earlier import stopped at: the file changed",
                    )
                index += 1
            while True:
                if cancel is not None and cancel.is_set():
                    return
                if not capture.grab():
                    break
                timestamp = float(capture.get(cv2.CAP_PROP_POS_MSEC))
                position = self.position
                self.decoded = index + 1
                self.last_decoded_ms = timestamp
                if timestamp + 0.5 >= position.next_due_ms:
                    ok, bgr = capture.retrieve()
                    if not ok or bgr is None:
                        raise VideoError(path, f"frame {index:,} at {format_time(timestamp)} cannot be decoded")
                    due = (np.floor((timestamp + 0.5) / self.interval_ms) + 1) * self.interval_ms
                    frame = SampledFrame(index, timestamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    self.position = SamplingPosition(index + 1, float(due), timestamp)
                    yield frame
                else:
                    self.position = SamplingPosition(index + 1, position.next_due_ms, position.last_timestamp_ms)
                index += 1
        finally:
            capture.release()
        self._check_complete(index)

    def _check_complete(self, decoded: int) -> None:
        """A stream that stops well before the frames and the duration its container declares was
        cut off (or is damaged from there on)."""
        info = self.info
        if info.declared_frames <= 0:
            return
        short_of_frames = decoded < 0.98 * info.declared_frames - 2
        short_of_time = self.last_decoded_ms < 0.98 * info.declared_ms - 1000
        if short_of_frames and (short_of_time or info.declared_fps <= 0):
            raise VideoError(
                info.path,
                f"truncated or damaged: decoding stopped at frame {decoded:,} of the {info.declared_frames:,} "
                "it declares",
            )
