"""Adaptation to a gallery, measured on one PKU-Sketch split with the large-gallery protocol.

The gallery is the split's test photos plus CUHK distractors (all of CUHK01 and CUHK03 ids
0743-0842, or a seeded sample of ``--distractors`` of them); it is imported into a fresh data folder,
the model is adapted to it without labels, and the split's test sketches (never seen by the
adaptation) search it with the model before and after. Prints the figures, the adaptation's time
per photo extrapolated to 5,000 photos, and the process's peak memory.

    PYTHONPATH=. python -m benchmarks.adaptation --pku-root ../shared/data/pku-sketch \\
        --cuhk-root ../shared/data/cuhk-reid --distractors 900 --work /tmp/adapt-bench --threads 2

OpenMP waits as ``sketchsearch-train adapt`` has them (spinning; see training/cli.py), unless
OMP_WAIT_POLICY is set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # before torch loads OpenMP, as the command line does

import torch

from core.common.paths import default_model_dir
from core.model.inference import InferenceModel
from core.model.network import Modality
from core.workspace import Workspace
from training.adapt import AdaptSettings, adapt
from training.data import ImageRecord, pku_sketch
from training.evaluate import evaluate_records, headline

CUHK03_DISTRACTOR_IDS = range(743, 843)


def distractor_paths(cuhk_root: Path) -> list[Path]:
    cuhk01 = sorted((cuhk_root / "cuhk01").glob("*.jpg"))
    cuhk03 = [p for p in sorted((cuhk_root / "cuhk03").glob("*.jpg")) if int(p.name[:4]) in CUHK03_DISTRACTOR_IDS]
    return cuhk01 + cuhk03


def link_gallery(folder: Path, photos: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(photos):
        link = folder / f"{i:05d}_{path.name}"
        if not link.exists():
            link.symlink_to(path.resolve())


def measure(model: Path, records: list[ImageRecord], schema) -> dict:
    return headline(evaluate_records(InferenceModel(model, "cpu"), records, schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pku-root", type=Path, required=True)
    parser.add_argument("--cuhk-root", type=Path, required=True)
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--distractors", type=int, help="a seeded sample of this many (default: all 4,822)")
    parser.add_argument("--without-pku-photos", action="store_true", help="adapt on the distractors alone")
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder (outside the repository)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=AdaptSettings.lr)
    parser.add_argument("--weight-decay", type=float, default=AdaptSettings.weight_decay)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photo-statistics", choices=("frozen", "adapted"), default="frozen")
    parser.add_argument("--alignment-weight", type=float, default=AdaptSettings.alignment_weight)
    parser.add_argument("--distillation-weight", type=float, default=AdaptSettings.distillation_weight)
    parser.add_argument("--out-name", default="adapted", help="the adapted model's folder in --work")
    parser.add_argument(
        "--sketch-statistics",
        choices=("frozen", "adapted"),
        default="frozen",
        help="the sketch encoder's batch-norm statistics during adaptation",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = pku_sketch(args.pku_root, args.split)
    test_photos = [r for r in split.test if r.modality is Modality.PHOTO]
    sketches = [r for r in split.test if r.modality is Modality.SKETCH]
    distractors = distractor_paths(args.cuhk_root)
    if args.distractors:
        distractors = sorted(random.Random(args.seed).sample(distractors, args.distractors))
    adapted_on = ([] if args.without_pku_photos else [r.path for r in test_photos]) + distractors
    gallery_records = test_photos + [
        ImageRecord(path=p, identity=f"distractor-{i}", modality=Modality.PHOTO, dataset="cuhk")
        for i, p in enumerate(distractors)
    ]

    data = args.work / "data"
    started = time.monotonic()
    link_gallery(args.work / "photos", adapted_on)
    with Workspace(data, args.model, "cpu") as workspace:
        summary = workspace.import_paths([args.work / "photos"])
        schema = workspace.schema
    print(f"gallery: {len(adapted_on)} photos imported in {time.monotonic() - started:.0f} s ({summary.added} new)")
    print(f"peak memory after the import: {peak_mb():.0f} MB")

    out = args.work / args.out_name
    if not out.is_dir():
        settings = AdaptSettings(
            epochs=args.epochs,
            batch=args.batch,
            lr=args.lr,
            weight_decay=args.weight_decay,
            seed=args.seed,
            threads=args.threads,
            freeze_sketch_statistics=args.sketch_statistics == "frozen",
            alignment_weight=args.alignment_weight,
            distillation_weight=args.distillation_weight,
            freeze_photo_statistics=args.photo_statistics == "frozen",
        )
        load = os.getloadavg()[0]
        result = adapt(args.model, data, out, settings=settings, device="cpu", command="benchmarks.adaptation")
        per_photo_epoch = result.seconds / (len(adapted_on) * args.epochs)
        print(
            f"adaptation: {result.seconds:.0f} s for {len(adapted_on)} photos x {args.epochs} epoch(s) on "
            f"{args.threads} thread(s) = {per_photo_epoch:.3f} s per photo-epoch; 5,000 photos x {args.epochs} "
            f"epoch(s): {per_photo_epoch * 5000 * args.epochs / 60:.1f} min; load average {load:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after; guard {json.dumps(result.guard)}"
        )
        print(f"peak memory after the adaptation: {peak_mb():.0f} MB")
    records = sketches + gallery_records
    for name, model in (("before", args.model), ("after", out)):
        figures = measure(model, records, schema)
        print(
            f"{name}: R1 {figures['R1']:.1f} R5 {figures['R5']:.1f} R10 {figures['R10']:.1f} "
            f"R20 {figures['R20']:.1f} mAP {figures['mAP']:.1f} ({figures['queries']} queries, "
            f"{figures['gallery']} photos)"
        )
    print(f"peak memory: {peak_mb():.0f} MB")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
