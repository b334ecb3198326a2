"""Import throughput: the whole pipeline (scan, read, hash, decode, thumbnail, preprocess, embed,
commit, index) against the bare model forward on the same batches, measured in one run: each round
times the bare forward, then a whole import into a fresh data folder, so that both see the same
load on a shared machine; the ratio is per round, and its median is reported.

    python -m benchmarks.import_throughput [--photos 256] [--size 640x480] [--rounds 3]

Beside them, the CPU time of one photo's preparation (on one thread) and of its forward pass (on
every thread the runtime uses), which bound the ratio when no core is idle.
Target: pipeline / bare forward >= 0.9."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.common.imaging import decode_for_gallery, load_rgb, make_thumbnail, read_photo_file
from core.common.paths import default_model_dir
from core.gallery.importer import preparing_threads
from core.model.loading import load_model
from core.model.network import Modality
from core.workspace import Workspace


def make_gallery(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    for i in range(count):
        # smooth image + a little noise: JPEG sizes like a real photo, distinct content per file
        noisy = np.clip(base.astype(np.int16) // 4 + 96 + rng.integers(-12, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def preparation_cpu_ms(model, photos: list[Path]) -> float:
    """CPU ms per photo of what the import's preparing threads do (read and hash, decode, thumbnail,
    preprocess), on this thread."""
    start = time.thread_time()
    for path in photos:
        data, _ = read_photo_file(path)
        _, _, image = decode_for_gallery(data, path)
        make_thumbnail(image)
        model.preprocess(np.asarray(image), Modality.PHOTO)
    return (time.thread_time() - start) * 1000 / len(photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--size", default="640x480", help="photo size WxH")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        photos = make_gallery(Path(tmp) / "gallery", args.photos, size)
        model = load_model(default_model_dir(), args.device)  # the runtime the app and the command line use
        model.batch_size = args.batch
        inputs = np.stack([model.preprocess(load_rgb(p), Modality.PHOTO) for p in photos])
        model.embed_preprocessed(inputs[: args.batch], Modality.PHOTO)  # warm-up
        preparation = preparation_cpu_ms(model, photos[:64])
        load_before = os.getloadavg()[0]

        bare, pipeline, forward_cpu, import_cpu = [], [], [], []
        for number in range(args.rounds):
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(inputs), args.batch):
                model.embed_preprocessed(inputs[i : i + args.batch], Modality.PHOTO)
            bare.append(len(inputs) / (time.perf_counter() - start))
            forward_cpu.append((time.process_time() - cpu) * 1000 / len(inputs))

            workspace = Workspace(Path(tmp) / f"data-{number}", model=model)
            start, cpu = time.perf_counter(), time.process_time()
            summary = workspace.import_paths([Path(tmp) / "gallery"], batch_size=args.batch)
            pipeline.append(summary.added / (time.perf_counter() - start))
            import_cpu.append((time.process_time() - cpu) * 1000 / summary.added)
            workspace.close()
        load_after = os.getloadavg()[0]

    ratios = [p / b for p, b in zip(pipeline, bare)]
    print(
        f"device            {model.device} on {model.runtime}, {os.cpu_count()} cores, "
        f"{preparing_threads(model.device.type)} preparing thread(s)"
    )
    print(f"photos            {args.photos} x {size[0]}x{size[1]} JPEG, batch {args.batch}, {args.rounds} round(s)")
    print(f"load average      {load_before:.2f} before, {load_after:.2f} after")
    forward = statistics.median(forward_cpu)
    whole = statistics.median(import_cpu)
    print(
        f"cpu per photo     preparation {preparation:.2f} ms (one thread), forward {forward:.2f} ms, "
        f"whole import {whole:.2f} ms (all threads): with no core idle the ratio is at most {forward / whole:.2f}"
    )
    for number, (b, p, r) in enumerate(zip(bare, pipeline, ratios), 1):
        print(f"round {number}           bare forward {b:6.1f} images/s   import {p:6.1f} images/s   ratio {r:.2f}")
    print(f"bare forward      {statistics.median(bare):8.1f} images/s (median)")
    print(f"import pipeline   {statistics.median(pipeline):8.1f} images/s (median)")
    print(f"ratio             {statistics.median(ratios):8.2f}   (median of the rounds' ratios; target >= 0.90)")


if __name__ == "__main__":
    main()
