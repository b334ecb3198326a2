"""Gallery-aware re-ranking screened on PKU-Sketch splits, paired against the same model without it.

    python -m benchmarks.pku_rerank --root PKU --distractors CUHK01 CUHK03 \\
        --model 1=resources/models/default --model 4=RUN/split-4/model ...

For each split: the settings (k, alpha, mutual; training/rerank.py) are chosen on the split's 15
validation people (carved from its training people with the training run's seed), searched
against their own photos plus the 4,822 distractors, by mAP. Then the split's test sketches are
measured against the test photos (100) and against the large gallery (test photos + distractors),
without and with re-ranking at the chosen settings. Test people choose nothing. Prints one line per
split and the mean paired differences."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from core.model.inference import InferenceModel
from core.model.network import Modality
from training.config import FitConfig
from training.data import by_modality
from training.distractors import distractor_records
from training.engine import prepare_data
from training.evaluate import DISTRACTOR_LABEL, embed_records, identity_labels, ranking_figures
from training.rerank import RerankSettings, neighbours, rerank

GRID = [
    RerankSettings(k, alpha, mutual)
    for k, alpha, mutual in itertools.product((1, 2, 3, 5), (0.25, 0.5, 1.0), (False, True))
]


def figures(sketches, sketch_ids, photos, photo_ids, settings: RerankSettings | None) -> dict[str, float]:
    """R1, R10, R20, mAP of sketches against photos, re-ranked with ``settings`` when given."""
    scores = sketches @ photos.T
    if settings is not None:
        scores = rerank(scores, neighbours(photos, settings.k, settings.mutual), settings.alpha)
    result = ranking_figures(scores, sketch_ids, photo_ids)
    return {k: result[k] for k in ("R1", "R10", "R20", "mAP")}


def embed(model: InferenceModel, records, modality: Modality) -> np.ndarray:
    return embed_records(model, by_modality(records, modality), modality).embeddings.astype(np.float64)


def screen_split(model_dir: Path, root: Path, split: int, distractors) -> dict:
    model = InferenceModel(model_dir)
    data = prepare_data(FitConfig(out="", root=str(root), dataset="pku", split=split), model.manifest.attribute_schema)
    recorded = ((model.manifest.provenance or {}).get("data") or {}).get("validation_identities")
    carved = sorted(i for _, i in {r.key for r in data.validation})
    if recorded and sorted(recorded) != carved:  # settings must be chosen on the model's own validation people
        raise SystemExit(f"{model_dir}: its validation people are not the ones carved here ({recorded} vs {carved})")
    extra = embed_records(model, distractors, Modality.PHOTO).embeddings.astype(np.float64)
    extra_ids = [DISTRACTOR_LABEL] * len(extra)

    val_s, val_p = embed(model, data.validation, Modality.SKETCH), embed(model, data.validation, Modality.PHOTO)
    val_s_ids = identity_labels(by_modality(data.validation, Modality.SKETCH))
    val_p_ids = identity_labels(by_modality(data.validation, Modality.PHOTO))
    val_gallery, val_gallery_ids = np.concatenate([val_p, extra]), val_p_ids + extra_ids
    chosen = max(
        GRID, key=lambda s: tuple(figures(val_s, val_s_ids, val_gallery, val_gallery_ids, s)[k] for k in ("mAP", "R1"))
    )
    validation = {
        "without": figures(val_s, val_s_ids, val_gallery, val_gallery_ids, None),
        "with": figures(val_s, val_s_ids, val_gallery, val_gallery_ids, chosen),
    }

    test_s, test_p = embed(model, data.test, Modality.SKETCH), embed(model, data.test, Modality.PHOTO)
    s_ids = identity_labels(by_modality(data.test, Modality.SKETCH))
    p_ids = identity_labels(by_modality(data.test, Modality.PHOTO))
    large, large_ids = np.concatenate([test_p, extra]), p_ids + extra_ids
    return {
        "split": split,
        "model": str(model_dir),
        "chosen": chosen.label(),
        "validation": validation,
        "test": {
            "without": figures(test_s, s_ids, test_p, p_ids, None),
            "with": figures(test_s, s_ids, test_p, p_ids, chosen),
        },
        "large": {
            "without": figures(test_s, s_ids, large, large_ids, None),
            "with": figures(test_s, s_ids, large, large_ids, chosen),
        },
    }


def paired(results: list[dict], gallery: str, key: str) -> str:
    deltas = np.array([r[gallery]["with"][key] - r[gallery]["without"][key] for r in results])
    before = np.mean([r[gallery]["without"][key] for r in results])
    after = np.mean([r[gallery]["with"][key] for r in results])
    t = (
        deltas.mean() / (deltas.std(ddof=1) / np.sqrt(len(deltas)))
        if len(deltas) > 1 and deltas.std() > 1e-9
        else float("nan")
    )
    higher = int((deltas > 0).sum())
    return (
        f"{key} {before:.1f} -> {after:.1f} ({deltas.mean():+.1f} ± {deltas.std():.1f}; "
        f"higher on {higher} of {len(deltas)}; paired t {t:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the PKU-Sketch folder")
    parser.add_argument("--distractors", type=Path, nargs="+", required=True)
    parser.add_argument(
        "--model", action="append", required=True, metavar="SPLIT=FOLDER", help="a split and its model folder"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the per-split figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    distractors = distractor_records(args.distractors)
    results = []
    for item in args.model:
        split, folder = item.split("=", 1)
        result = screen_split(Path(folder), args.root, int(split), distractors)
        results.append(result)
        t, g = result["test"], result["large"]
        print(
            f"split {result['split']} ({result['chosen']}, chosen on validation): "
            f"100 photos R1 {t['without']['R1']:.1f} -> {t['with']['R1']:.1f}, mAP {t['without']['mAP']:.1f} -> "
            f"{t['with']['mAP']:.1f}; {len(distractors) + 100} photos R1 {g['without']['R1']:.1f} -> "
            f"{g['with']['R1']:.1f}, R20 {g['without']['R20']:.1f} -> {g['with']['R20']:.1f}, "
            f"mAP {g['without']['mAP']:.1f} -> {g['with']['mAP']:.1f}",
            flush=True,
        )
    for gallery in ("test", "large"):
        print(f"{gallery}: " + "; ".join(paired(results, gallery, k) for k in ("R1", "R20", "mAP")))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
