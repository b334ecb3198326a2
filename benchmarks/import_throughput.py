"""Import throughput: the whole pipeline (scan, read, hash, decode, thumbnail, preprocess, embed,
commit, index) against the bare model forward on the same batches, measured in one run.

    python -m benchmarks.import_throughput [--photos 256] [--size 640x480]

Target: pipeline / bare forward >= 0.8."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.common.imaging import load_rgb
from core.common.paths import default_model_dir
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--size", default="640x480", help="photo size WxH")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        photos = make_gallery(Path(tmp) / "gallery", args.photos, size)
        model = load_model(default_model_dir(), args.device)  # the runtime the app and the command line use
        model.batch_size = args.batch
        inputs = np.stack([model.preprocess(load_rgb(p), Modality.PHOTO) for p in photos])
        model.embed_preprocessed(inputs[: args.batch], Modality.PHOTO)  # warm-up

        start = time.perf_counter()
        for i in range(0, len(inputs), args.batch):
            model.embed_preprocessed(inputs[i : i + args.batch], Modality.PHOTO)
        bare = len(inputs) / (time.perf_counter() - start)

        workspace = Workspace(Path(tmp) / "data", model=model)
        start = time.perf_counter()
        summary = workspace.import_paths([Path(tmp) / "gallery"], batch_size=args.batch)
        pipeline = summary.added / (time.perf_counter() - start)
        workspace.close()

    print(f"device            {model.device} on {model.runtime}")
    print(f"photos            {args.photos} x {size[0]}x{size[1]} JPEG, batch {args.batch}")
    print(f"bare forward      {bare:8.1f} images/s")
    print(f"import pipeline   {pipeline:8.1f} images/s")
    print(f"ratio             {pipeline / bare:8.2f}   (target >= 0.80)")


if __name__ == "__main__":
    main()
