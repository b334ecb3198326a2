"""What no further training adds: fused models, other input sizes and gallery-side neighbour
averaging, over PKU-Sketch splits, on models a `sketchsearch-train benchmark pku` run exported.

    python -m benchmarks.pku_fusion --root DIR RUN [RUN ...] [--sizes 224x112 ...] [--splits 1 2 ...]

Each RUN is a benchmark `--out` folder (split-N/model). For every split that all runs have, the
test sketches and photos are embedded by each model as its manifest says, and sketch -> photo R1
and mAP are measured for:
- each run alone, and all runs fused (unit embeddings concatenated: the mean of their cosine
  similarities);
- the first run's models at other input sizes, fused with their own size (multi-scale embedding);
- the first run with each gallery photo averaged with its k nearest gallery photos, weighted by
  similarity (database-side augmentation: a person's other photos pull its photos together).
Figures are on test people, so this is a diagnosis of where the gap lies; nothing in the recipe or
the app is chosen with it. Prints mean ± std over splits and the ratio of each figure to the
first run's."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from core.model.inference import InferenceModel
from core.model.network import Modality
from training.config import FitConfig
from training.data import by_modality
from training.engine import load_target
from training.evaluate import cmc_map, embed_records, identity_labels, with_settings


@dataclasses.dataclass
class SplitEmbeddings:
    sketches: np.ndarray
    photos: np.ndarray
    sketch_ids: list[str]
    photo_ids: list[str]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def embed_split(model_dir: Path, root: Path, split: int, size: tuple[int, int] | None = None) -> SplitEmbeddings:
    model = InferenceModel(model_dir)
    model.manifest = with_settings(model.manifest, size=size)
    config = FitConfig(out="", root=str(root), dataset="pku", split=split)
    test = load_target(config, model.manifest.attribute_schema).test
    sketches, photos = by_modality(test, Modality.SKETCH), by_modality(test, Modality.PHOTO)
    return SplitEmbeddings(
        unit(embed_records(model, sketches, Modality.SKETCH).embeddings),
        unit(embed_records(model, photos, Modality.PHOTO).embeddings),
        identity_labels(sketches),
        identity_labels(photos),
    )


def fused(parts: list[SplitEmbeddings]) -> SplitEmbeddings:
    """Concatenated unit embeddings, scaled back to unit length: cosine similarity becomes the
    mean of the parts' cosine similarities."""
    return dataclasses.replace(
        parts[0],
        sketches=unit(np.concatenate([p.sketches for p in parts], axis=1)),
        photos=unit(np.concatenate([p.photos for p in parts], axis=1)),
    )


def neighbour_averaged(embeddings: SplitEmbeddings, k: int) -> SplitEmbeddings:
    """Each gallery photo replaced by the similarity-weighted mean of itself and its k nearest
    gallery photos."""
    similarity = embeddings.photos @ embeddings.photos.T
    nearest = np.argsort(-similarity, axis=1)[:, : k + 1]
    weights = np.take_along_axis(similarity, nearest, axis=1).clip(min=0)
    photos = unit(np.einsum("in,ind->id", weights, embeddings.photos[nearest]))
    return dataclasses.replace(embeddings, photos=photos)


def figures(embeddings: SplitEmbeddings) -> tuple[float, float]:
    result = cmc_map(embeddings.sketches, embeddings.sketch_ids, embeddings.photos, embeddings.photo_ids)
    return result["R1"], result["mAP"]


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def measure(
    runs: list[Path], root: Path, splits: list[int], sizes: list[tuple[int, int]], neighbours: list[int]
) -> dict[str, list[tuple[float, float]]]:
    """(R1, mAP) per split for each row of the diagnosis, keyed by the row's name; the first key is
    the first run alone."""
    rows: dict[str, list[tuple[float, float]]] = {}
    first_run = runs[0]
    for n in splits:
        per_run = [embed_split(run / f"split-{n}" / "model", root, n) for run in runs]
        for run, embeddings in zip(runs, per_run):
            rows.setdefault(run.name, []).append(figures(embeddings))
        if len(per_run) > 1:
            rows.setdefault("all runs fused", []).append(figures(fused(per_run)))
        for size in sizes:
            other = embed_split(first_run / f"split-{n}" / "model", root, n, size)
            rows.setdefault(f"{first_run.name} at {size[0]}x{size[1]}", []).append(figures(other))
            rows.setdefault(f"{first_run.name}, own size + {size[0]}x{size[1]} fused", []).append(
                figures(fused([per_run[0], other]))
            )
        for k in neighbours:
            rows.setdefault(f"{first_run.name}, gallery averaged with {k} nearest", []).append(
                figures(neighbour_averaged(per_run[0], k))
            )
        print(f"split {n} done", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="benchmark output folders (split-N/model)")
    parser.add_argument("--root", type=Path, required=True, help="the PKU-Sketch folder")
    parser.add_argument("--splits", type=int, nargs="*", default=list(range(1, 11)))
    parser.add_argument(
        "--sizes",
        type=parse_size,
        nargs="*",
        default=[],
        help="other input sizes (HxW) to embed the first run's models at",
    )
    parser.add_argument("--neighbours", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    splits = [
        n for n in args.splits if all((run / f"split-{n}" / "model" / "manifest.json").is_file() for run in args.runs)
    ]
    if not splits:
        raise SystemExit("no split has an exported model in every run folder")
    rows = measure(args.runs, args.root, splits, args.sizes, args.neighbours)
    baseline = np.array(next(iter(rows.values())))
    print(
        f"\nsketch -> photo over {len(splits)} split(s) {splits}; ratio: mean over splits of the row / "
        f"{args.runs[0].name}"
    )
    for name, values in rows.items():
        values = np.array(values)
        r1, mean_ap = values[:, 0], values[:, 1]
        ratio_r1, ratio_map = r1.mean() / baseline[:, 0].mean(), mean_ap.mean() / baseline[:, 1].mean()
        print(
            f"{name:60s} R1 {r1.mean():5.1f} ± {r1.std():4.1f}  mAP {mean_ap.mean():5.1f} ± {mean_ap.std():4.1f}"
            f"  ratio R1 {ratio_r1:.3f} mAP {ratio_map:.3f}"
        )


if __name__ == "__main__":
    main()
