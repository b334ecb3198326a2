"""People in a frame: the bundled single-class SSDLite pedestrian detector (resources/detector/) on
ONNX Runtime, so that it runs in the CPU package, which carries no torch.

The network sees 300 x 300 pixels. People at CCTV distance are then a few pixels high and missed,
so the frame is also cut into four overlapping tiles, each seen at the same 300 x 300; people
close to the camera, which it misses at full scale, are looked for once more in the frame shrunk
onto a canvas twice its size. All views run as one batch; boxes a tile cut at its inner edge are
dropped (another view holds the whole person), the rest are merged by non-maximum suppression and
kept only when they are shaped like a standing person and tall enough to be worth a crop.
What this finds and misses on real clips is measured in benchmarks/results/video.md."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common import environment
from core.common.errors import SketchSearchError
from core.common.paths import resources_dir

MANIFEST_NAME = "ssdlite_pedestrian.json"
INPUT_SIDE = 300
PEDESTRIAN_CLASS = 1


class DetectorError(SketchSearchError):
    """The bundled detector is missing, damaged or cannot be loaded."""


def default_detector_dir() -> Path:
    return resources_dir() / "detector"


@dataclass(frozen=True)
class Detection:
    """A person's box in frame pixels (x1, y1 exclusive) and the detector's score."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True)
class DetectorSettings:
    min_score: float = 0.4
    min_height: int = 40  # pixels in the frame: smaller people make no usable crop
    min_aspect: float = 1.2  # height / width of a standing person; wider boxes are mostly false
    max_aspect: float = 5.0
    tiles: bool = True  # four overlapping tiles for small people
    tile_fraction: float = 0.6  # each tile's side as a fraction of the frame's
    shrunk: bool = True  # the frame on a canvas twice its size, for people close to the camera
    shrunk_min_height: float = 0.3  # of the frame's height: smaller boxes from that view merge small people
    nms_iou: float = 0.45


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        _ = manifest["file"], manifest["sha256"], manifest["name"]
    except FileNotFoundError:
        raise DetectorError(f"{path}: the person detector's description is missing; reinstall SketchSearch") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DetectorError(f"{path}: the person detector's description cannot be read ({exc})") from None
    return manifest


def verified_detector(folder: Path) -> tuple[dict, bytes]:
    """The detector's manifest and its ONNX bytes, refused when their sha256 is not the recorded one."""
    manifest = read_manifest(folder)
    path = folder / manifest["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DetectorError(f"{path}: the person detector cannot be read ({exc.strerror or exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest["sha256"]:
        raise DetectorError(
            f"{path}: sha256 {actual} is not the {manifest['sha256']} recorded in {MANIFEST_NAME}; "
            "the detector file is damaged or was replaced: reinstall SketchSearch"
        )
    return manifest, data


def views(height: int, width: int, settings: DetectorSettings) -> list[tuple[int, int, int, int]]:
    """Regions of the frame (x0, y0, x1, y1) the network looks at; a region may reach past the frame
    (the shrunk view), where it sees black."""
    regions = [(0, 0, width, height)]
    if settings.tiles:
        tile_w, tile_h = round(width * settings.tile_fraction), round(height * settings.tile_fraction)
        for y0 in (0, height - tile_h):
            for x0 in (0, width - tile_w):
                regions.append((x0, y0, x0 + tile_w, y0 + tile_h))
    if settings.shrunk:
        # the frame in the middle of a canvas twice its size: people twice as small to the network
        regions.append((-width // 2, -height // 2, width + width // 2, height + height // 2))
    return regions


def _view_pixels(frame: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = region
    height, width = frame.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        part = frame[y0:y1, x0:x1]
    else:
        part = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        part[-y0 : -y0 + height, -x0 : -x0 + width] = frame
    return cv2.resize(part, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_LINEAR)


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        ix0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        union = areas[best] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        # a box mostly inside a better one is the same person seen by a tile that cut them
        inside = inter / np.maximum(np.minimum(areas[best], areas[rest]), 1e-9)
        order = rest[(overlap <= iou) & (inside <= 0.8)]
    return kept


class PersonDetector:
    """The bundled detector (or the one in ``folder``), its sha256 checked before it is loaded."""

    def __init__(
        self, folder: Path | None = None, settings: DetectorSettings | None = None, threads: int | None = None
    ):
        try:
            import onnxruntime
        except ImportError:
            raise DetectorError("ONNX Runtime is not installed (pip install onnxruntime)") from None
        self.folder = Path(folder) if folder is not None else default_detector_dir()
        self.manifest, data = verified_detector(self.folder)
        self.name = str(self.manifest["name"])
        self.sha256 = str(self.manifest["sha256"])
        self.settings = settings or DetectorSettings()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads if threads is not None else environment.threads()
        try:
            self._session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise DetectorError(f"{self.folder / self.manifest['file']}: ONNX Runtime cannot load it ({exc})") from None
        self._input = self._session.get_inputs()[0].name

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People in an H x W x 3 uint8 RGB frame, best score first."""
        height, width = frame.shape[:2]
        settings = self.settings
        regions = views(height, width, settings)
        batch = np.stack([_view_pixels(frame, region) for region in regions])
        _count, scores, boxes, classes = self._session.run(None, {self._input: batch})
        found_boxes, found_scores = [], []
        for v, (x0, y0, x1, y1) in enumerate(regions):
            keep = (scores[v] >= settings.min_score) & (classes[v].astype(int) == PEDESTRIAN_CLASS)
            view_w, view_h = x1 - x0, y1 - y0
            shrunk = x0 < 0
            min_height = max(settings.min_height, settings.shrunk_min_height * height if shrunk else 0)
            for (ymin, xmin, ymax, xmax), score in zip(boxes[v][keep], scores[v][keep]):
                box = np.array([x0 + xmin * view_w, y0 + ymin * view_h, x0 + xmax * view_w, y0 + ymax * view_h])
                if self._cut_by_tile(box, (x0, y0, x1, y1), width, height):
                    continue
                box = np.clip(box, 0, [width, height, width, height])
                box_w, box_h = box[2] - box[0], box[3] - box[1]
                if box_h < min_height or box_w <= 0:
                    continue
                if not settings.min_aspect <= box_h / box_w <= settings.max_aspect:
                    continue
                found_boxes.append(box)
                found_scores.append(float(score))
        if not found_boxes:
            return []
        boxes_array, scores_array = np.array(found_boxes), np.array(found_scores)
        detections = []
        for i in suppress(boxes_array, scores_array, settings.nms_iou):
            x0, y0, x1, y1 = (int(round(v)) for v in boxes_array[i])
            detections.append(Detection(x0, y0, x1, y1, round(float(scores_array[i]), 4)))
        return detections

    @staticmethod
    def _cut_by_tile(box: np.ndarray, region: tuple[int, int, int, int], width: int, height: int) -> bool:
        """A box that touches a tile's edge inside the frame holds part of a person only."""
        x0, y0, x1, y1 = region
        if x0 < 0 or y0 < 0 or (x0, y0, x1, y1) == (0, 0, width, height):
            return False  # the whole frame, or the shrunk view: nothing is cut
        margin = max(4.0, 0.03 * min(x1 - x0, y1 - y0))  # a detector's box edge is a few pixels off the cut
        return bool(
            (x0 > 0 and box[0] <= x0 + margin)
            or (y0 > 0 and box[1] <= y0 + margin)
            or (x1 < width and box[2] >= x1 - margin)
            or (y1 < height and box[3] >= y1 - margin)
        )
