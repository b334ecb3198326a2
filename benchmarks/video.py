"""Video import measured on the real clips in ../shared/data/video/ (benchmarks/results/video.md).

    python -m benchmarks.video detect --frames-to DIR     # 20 evenly spaced frames of each clip: boxes
                                                          # per frame (tiled and whole-frame only), the
                                                          # frames with their boxes written to DIR to be
                                                          # counted by hand (never into the repository)
    python -m benchmarks.video throughput [--seconds S]   # decode, detect, embed: time per sampled frame,
                                                          # and the projection for an hour of 720p
    python -m benchmarks.video tracks                     # each clip imported whole: tracks and crops
    python -m benchmarks.video composite --work DIR       # PKU-Sketch test people walking through a real
                                                          # background clip: rank of their track against
                                                          # rank of their original photo, by their sketches

The clips are research data (PETS 2009) and a CC BY 4.0 sample (Intel): read from the shared folder,
never copied, and nothing cut from them is written inside the repository."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from core.video.detector import DetectorSettings, PersonDetector
from core.video.source import FrameSampler, probe

ROOT = Path(__file__).resolve().parents[1]
CLIPS = {
    "pets": ROOT.parent / "shared" / "data" / "video" / "pets2009_s2l1_view001_480x360.mp4",
    "intel": ROOT.parent / "shared" / "data" / "video" / "intel_one_by_one_person_detection.mp4",
}
SAMPLED_FRAMES = 20


def _frames(path: Path, count: int) -> list[tuple[int, np.ndarray]]:
    """``count`` evenly spaced frames (index, RGB), decoded in order."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
    found, index = [], 0
    while capture.grab():
        if index in wanted:
            _, bgr = capture.retrieve()
            found.append((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        index += 1
    capture.release()
    return found


def detect(frames_to: Path) -> dict:
    """Boxes per sampled frame, tiled (the product) and whole frame only, with frames to count."""
    import cv2

    tiled = PersonDetector()
    whole = PersonDetector(settings=DetectorSettings(tiles=False, shrunk=False))
    frames_to.mkdir(parents=True, exist_ok=True)
    report = {}
    for name, path in CLIPS.items():
        rows = []
        for k, (index, frame) in enumerate(_frames(path, SAMPLED_FRAMES)):
            found, plain = tiled.detect(frame), whole.detect(frame)
            rows.append({"frame": index, "tiled": [d.box for d in found], "whole": [d.box for d in plain]})
            shown = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            big = (
                cv2.resize(shown, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) if frame.shape[1] < 600 else shown
            )
            scale = big.shape[1] / frame.shape[1]
            for number, d in enumerate(found):
                p0, p1 = (int(d.x0 * scale), int(d.y0 * scale)), (int(d.x1 * scale), int(d.y1 * scale))
                cv2.rectangle(big, p0, p1, (0, 255, 0), 1)
                cv2.putText(
                    big, str(number), (p0[0], max(12, p0[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1
                )
            cv2.imwrite(str(frames_to / f"{name}_{k:02d}_frame{index:04d}.png"), big)
        report[name] = rows
        print(f"{name}: boxes per frame, tiled {[len(r['tiled']) for r in rows]}")
        print(f"{name}: boxes per frame, whole  {[len(r['whole']) for r in rows]}")
    (frames_to / "boxes.json").write_text(json.dumps(report, indent=1))
    return report


def throughput(seconds: float) -> dict:
    """Per sampled frame (2 frames/s), on this machine: decoding every frame, detecting, and
    embedding each person's crop with the bundled model; then an hour of 720p projected from them."""
    import cv2

    from core.common.paths import default_model_dir
    from core.model.loading import load_model
    from core.model.modality import Modality
    from core.video.tracking import colour_signature, crop_box

    model = load_model(default_model_dir(), "cpu")
    detector = PersonDetector()
    result = {}
    for name, path in CLIPS.items():
        info = probe(path)
        capture = cv2.VideoCapture(str(path))
        wall, cpu = time.perf_counter(), time.process_time()
        decoded = 0
        while decoded < seconds * info.declared_fps and capture.grab():
            capture.retrieve()
            decoded += 1
        decode = ((time.perf_counter() - wall) / decoded, (time.process_time() - cpu) / decoded)
        capture.release()
        frames = []
        for frame in FrameSampler(info, 2.0).frames():
            frames.append(frame.pixels)
            if len(frames) >= seconds * 2:
                break
        wall, cpu = time.perf_counter(), time.process_time()
        found = [detector.detect(f) for f in frames]
        detect_time = ((time.perf_counter() - wall) / len(frames), (time.process_time() - cpu) / len(frames))
        crops = [
            f[y0:y1, x0:x1]
            for f, boxes in zip(frames, found)
            for x0, y0, x1, y1 in (crop_box(d, f.shape[1], f.shape[0]) for d in boxes)
        ]
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(crops), 8):
            model.embed_images(crops[start : start + 8], Modality.PHOTO)
            [colour_signature(c) for c in crops[start : start + 8]]
        per_crop = ((time.perf_counter() - wall) / max(len(crops), 1), (time.process_time() - cpu) / max(len(crops), 1))
        people = len(crops) / len(frames)
        result[name] = {
            "frame_size": [info.width, info.height],
            "decode_ms_per_frame": [round(v * 1000, 2) for v in decode],
            "detect_ms_per_sample": [round(v * 1000, 1) for v in detect_time],
            "embed_ms_per_person": [round(v * 1000, 1) for v in per_crop],
            "people_per_sample": round(people, 2),
            "samples": len(frames),
        }
        print(name, json.dumps(result[name]))
    # an hour of 720p at 25 frames/s sampled at 2 frames/s: every frame decoded (decoding scales with
    # the pixels), each sample detected (the views are resized to 300 x 300: about constant), each
    # person embedded; the PETS crowd (most people per frame) is the harder case
    pets = result["pets"]
    scale = 1280 * 720 / (pets["frame_size"][0] * pets["frame_size"][1])
    for column, label in ((0, "wall"), (1, "cpu")):
        decode_hour = 3600 * 25 * pets["decode_ms_per_frame"][column] * scale / 1000
        per_sample = (
            pets["detect_ms_per_sample"][column] + pets["people_per_sample"] * pets["embed_ms_per_person"][column]
        )
        samples_hour = 3600 * 2 * per_sample / 1000
        result[f"hour_of_720p_{label}_minutes"] = round((decode_hour + samples_hour) / 60, 1)
        print(
            f"an hour of 720p, {label} time: decode {decode_hour / 60:.1f} min + {7200} samples "
            f"{samples_hour / 60:.1f} min = {(decode_hour + samples_hour) / 60:.1f} min"
        )
    return result


def tracks() -> dict:
    """Each clip imported whole, as `sketchsearch import` does: tracks, crops, time."""
    from core.common.paths import default_model_dir
    from core.workspace import Workspace

    result = {}
    for name, path in CLIPS.items():
        with tempfile.TemporaryDirectory() as data, Workspace(Path(data), default_model_dir(), "cpu") as workspace:
            wall, cpu = time.perf_counter(), time.process_time()
            (summary,) = workspace.videos.import_videos([path])
            result[name] = {
                **summary.to_json(),
                "wall_s": round(time.perf_counter() - wall, 1),
                "cpu_s": round(time.process_time() - cpu, 1),
            }
            sources = workspace.videos.sources(workspace.photo_ids().tolist())
            result[name]["tracks_seen"] = sorted((s.track_id, s.time_text, list(s.box)) for s in sources.values())
        print(name, json.dumps({k: v for k, v in result[name].items() if k != "tracks_seen"}))
    return result


def composite(work: Path, split: int = 1, seconds_each: float = 4.0, fps: float = 10.0) -> dict:
    """The end-to-end cost of video: each PKU-Sketch test person of ``split`` (one photo each) walks
    across the empty room of the Intel clip (its first 6 s, played back and forth) at the size people
    have there, one after another; the composite is imported, and each person's sketch searches the
    crops (a crop belongs to the person whose walk its time falls in) and, apart, the same photos
    imported as they are. Ranks of the right person: best crop of theirs, and their photo."""
    import cv2

    from core.common.paths import default_model_dir
    from core.workspace import Workspace

    root = ROOT.parent / "shared" / "data" / "pku-sketch"
    sketches = {}
    for line in (root / "idx" / f"test_sketch_{split}.txt").read_text().split("\n"):
        if line.strip() and (root / line.split()[0]).is_file():
            sketches[line.split()[1]] = root / line.split()[0]
    photos = {}
    for line in (root / "idx" / f"test_visible_{split}.txt").read_text().split("\n"):
        if line.strip() and line.split()[1] in sketches:
            photos.setdefault(line.split()[1], root / line.split()[0])
    people = sorted(photos)
    capture = cv2.VideoCapture(str(CLIPS["intel"]))
    room = []
    while len(room) < 60 and capture.grab():  # 0-6 s: nobody in the room yet
        room.append(capture.retrieve()[1])
    capture.release()
    room = room + room[::-1]
    height, width = room[0].shape[:2]
    rng = np.random.default_rng(0)
    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"pku_split{split}_in_room.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    per_person = int(seconds_each * fps)
    for p, person in enumerate(people):
        photo = cv2.imread(str(photos[person]))
        tall = int(rng.integers(300, 380))  # people in this room are 340-400 px high
        wide = round(photo.shape[1] * tall / photo.shape[0])
        pasted = cv2.resize(photo, (wide, tall), interpolation=cv2.INTER_AREA)
        bottom = int(rng.integers(400, height))
        for i in range(per_person):
            frame = room[(p * per_person + i) % len(room)].copy()
            x = int(-wide + (width + wide) * (i + 0.5) / per_person)
            x0, x1 = max(x, 0), min(x + wide, width)
            if x1 > x0:
                frame[bottom - tall : bottom, x0:x1] = pasted[:, x0 - x : x1 - x]
            writer.write(frame)
    writer.release()
    result: dict = {"people": len(people), "clip_seconds": len(people) * seconds_each}
    with tempfile.TemporaryDirectory() as data, Workspace(Path(data), default_model_dir(), "cpu") as video_gallery:
        wall = time.perf_counter()
        (summary,) = video_gallery.videos.import_videos([clip])
        result["import"] = {**summary.to_json(), "wall_s": round(time.perf_counter() - wall, 1)}
        ids = video_gallery.photo_ids().tolist()
        owner = {
            photo_id: people[min(int(source.timestamp_ms // (seconds_each * 1000)), len(people) - 1)]
            for photo_id, source in video_gallery.videos.sources(ids).items()
        }
        queries = video_gallery.embed_sketches([sketches[p] for p in people])
        ranked = video_gallery.search_embeddings(queries, top_k=len(ids))
        video_ranks = []
        for person, candidates in zip(people, ranked):
            found = [c.rank for c in candidates if owner.get(c.photo_id) == person]
            video_ranks.append(found[0] if found else None)
        result["crops_per_person"] = np.bincount(
            [people.index(o) for o in owner.values()], minlength=len(people)
        ).tolist()
    with tempfile.TemporaryDirectory() as data, Workspace(Path(data), default_model_dir(), "cpu") as photo_gallery:
        photo_gallery.import_paths([photos[p] for p in people])
        path_owner = {str(photos[p]): p for p in people}
        ranked = photo_gallery.search_embeddings(
            photo_gallery.embed_sketches([sketches[p] for p in people]), len(people)
        )
        photo_ranks = [
            next(c.rank for c in cands if path_owner[c.path] == person) for person, cands in zip(people, ranked)
        ]
    missing = sum(r is None for r in video_ranks)

    def recall(ranks, k):
        return round(100 * sum(r is not None and r <= k for r in ranks) / len(ranks), 1)

    result["photos"] = {f"R{k}": recall(photo_ranks, k) for k in (1, 5, 10)} | {"gallery": len(people)}
    result["video"] = {f"R{k}": recall(video_ranks, k) for k in (1, 5, 10)} | {
        "gallery": len(ids),
        "people_never_cropped": missing,
    }
    result["ranks"] = list(zip(people, photo_ranks, video_ranks))
    print(json.dumps({k: v for k, v in result.items() if k != "ranks"}))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detect")
    p.add_argument("--frames-to", type=Path, required=True, help="a folder outside the repository")
    p = sub.add_parser("throughput")
    p.add_argument("--seconds", type=float, default=30.0, help="of each clip (default 30)")
    sub.add_parser("tracks")
    p = sub.add_parser("composite")
    p.add_argument("--work", type=Path, required=True, help="where the composite clip goes (outside the repository)")
    p.add_argument("--split", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.command == "detect":
        if args.frames_to.resolve().is_relative_to(ROOT):
            parser.error("--frames-to must lie outside the repository: the frames show real people")
        detect(args.frames_to)
    elif args.command == "throughput":
        throughput(args.seconds)
    elif args.command == "composite":
        if args.work.resolve().is_relative_to(ROOT):
            parser.error("--work must lie outside the repository: the clip shows real people")
        result = composite(args.work, args.split)
        print("person, rank of their photo, rank of their best crop:", result["ranks"])
    else:
        tracks()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
