"""Where a search result is weak: scores of the bundled model on PKU-Sketch split 1's validation
people (the 15 identities its manifest lists as carved out of the training people to choose the
epoch; never the 50 test people). Inference only.

    python -m benchmarks.weak_result [--root ../shared/data/pku-sketch]

Each validation sketch searches the validation photos (as the app does: clean-up and test-time
flip per the manifest). Printed: per query the true person's best score, the top score, the gap
between the top score and the best photo of another person, and whether rank 1 was right."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import numpy as np

from core.casework.weak import weak_result_reasons
from core.common.imaging import load_rgb
from core.common.paths import default_model_dir
from core.model.loading import load_model
from core.model.network import Modality
from training.data import pku_sketch


def validation_people(model_dir: Path) -> list[str]:
    provenance = json.loads((model_dir / "manifest.json").read_text())["provenance"]
    data = provenance["data"]
    data = ast.literal_eval(data) if isinstance(data, str) else data
    return list(data["validation_identities"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/pku-sketch"))
    args = parser.parse_args()
    model_dir = default_model_dir()
    people = set(validation_people(model_dir))
    split = pku_sketch(args.root, 1)
    records = [r for r in split.train if r.identity in people]
    sketches = [r for r in records if r.modality is Modality.SKETCH]
    photos = [r for r in records if r.modality is Modality.PHOTO]
    model = load_model(model_dir, "cpu")
    q = model.embed_images([load_rgb(r.path) for r in sketches], Modality.SKETCH).embeddings
    g = model.embed_images([load_rgb(r.path) for r in photos], Modality.PHOTO).embeddings
    similarity = q @ g.T
    ids = np.asarray([r.identity for r in photos])
    rows, flags = [], []
    for i, sketch in enumerate(sketches):
        order = np.argsort(-similarity[i])
        top = float(similarity[i, order[0]])
        true_best = float(similarity[i, ids == sketch.identity].max())
        other_best = float(similarity[i, ids != sketch.identity].max())
        right = ids[order[0]] == sketch.identity
        rows.append((sketch.identity, top, true_best, other_best, bool(right)))
        ranked = [float(similarity[i, j]) for j in order]
        flags.append(bool(weak_result_reasons(ranked)))
        flagged = "weak" if weak_result_reasons(ranked) else "-"
        print(
            f"{sketch.identity:>4}  top {top:.3f}  true {true_best:.3f}  best other {other_best:.3f}  "
            f"gap {top - ranked[1]:.3f}  top-5th {top - ranked[4]:.3f}  rank-1 {'right' if right else 'wrong'}  "
            f"{flagged}"
        )
    top = np.asarray([r[1] for r in rows])
    true = np.asarray([r[2] for r in rows])
    other = np.asarray([r[3] for r in rows])
    right = np.asarray([r[4] for r in rows])
    flags = np.asarray(flags)
    print(f"queries {len(rows)}, photos {len(photos)}, rank-1 right {right.sum()}")
    print(
        f"flagged weak: {flags[~right].sum()} of {(~right).sum()} wrong rank 1s, "
        f"{flags[right].sum()} of {right.sum()} right ones"
    )
    print(f"true match score: min {true.min():.3f} p20 {np.percentile(true, 20):.3f} median {np.median(true):.3f}")
    print(f"best wrong person: median {np.median(other):.3f} max {other.max():.3f}")
    # separation of the top result from the best photo of another person: on right queries
    margin = true - other
    print(f"true minus best other: right queries {np.sort(margin[right]).round(3).tolist()}")
    print(f"top score of right queries {np.sort(top[right]).round(3).tolist()}")
    print(f"top score of wrong queries {np.sort(top[~right]).round(3).tolist()}")
    gaps = []
    for i in range(len(rows)):
        s = np.sort(similarity[i])[::-1]
        gaps.append(float(s[0]) - float(s[4]))
    gaps = np.asarray(gaps)
    print(
        f"top minus 5th: right {np.sort(gaps[right]).round(3).tolist()} wrong {np.sort(gaps[~right]).round(3).tolist()}"
    )


if __name__ == "__main__":
    main()
