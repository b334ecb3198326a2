"""Retrieval and attribute evaluation.

CMC and mAP follow torchreid's ``eval_func`` without the same-camera filter (query and gallery
are different modalities): exact search over L2-normalised embeddings (cosine similarity, the
ranking FAISS inner-product search gives at run time); queries whose identity is not in the
gallery are skipped. Figures are percentages. Where sketches carry a painting style (PKU-Sketch's
five artists), sketch -> photo is also measured per style, against the whole gallery.

The large-gallery protocol adds distractor photos (people who are in no query and in no training
data) to the gallery, never to the queries: R1 of a 100-photo gallery says little about a gallery
of thousands, which is what an investigator searches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.common.imaging import load_rgb
from core.model.attributes import AttributeSchema
from core.model.checkpoint import Manifest
from core.model.inference import EmbeddedBatch, PredictedAttribute
from core.model.network import Modality
from training.data import ImageRecord, by_modality

RANKS = (1, 5, 10, 20)


class Embedder(Protocol):
    def embed_images(self, images: Sequence[np.ndarray], modality: Modality | str) -> EmbeddedBatch: ...


def cmc_map(
    query: np.ndarray,
    query_ids: Sequence,
    gallery: np.ndarray,
    gallery_ids: Sequence,
    ranks: Sequence[int] = RANKS,
) -> dict[str, float]:
    """CMC at ``ranks`` and mAP (percent) for L2-normalised query/gallery rows, and the margin:
    the mean over queries of the best true match's cosine similarity minus the best wrong one's
    (x100). The margin keeps telling models apart after R1 and mAP reach 100."""
    similarity = np.asarray(query, np.float64) @ np.asarray(gallery, np.float64).T
    return ranking_figures(similarity, query_ids, gallery_ids, ranks)


def ranking_figures(
    similarity: np.ndarray, query_ids: Sequence, gallery_ids: Sequence, ranks: Sequence[int] = RANKS
) -> dict[str, float]:
    """:func:`cmc_map` of a given query x gallery score matrix (a re-ranked one, say)."""
    query_ids, gallery_ids = np.asarray(query_ids), np.asarray(gallery_ids)
    order = np.argsort(-similarity, axis=1, kind="stable")
    firsts, aps, margins = [], [], []
    for q in range(len(query_ids)):
        matches = gallery_ids[order[q]] == query_ids[q]
        if not matches.any():
            continue
        hits = np.flatnonzero(matches)
        firsts.append(hits[0])
        if not matches.all():
            ranked = similarity[q, order[q]]
            margins.append(ranked[hits[0]] - ranked[np.flatnonzero(~matches)[0]])
        precision_at_hits = np.arange(1, len(hits) + 1) / (hits + 1)
        aps.append(precision_at_hits.mean())
    result = {f"R{k}": 100.0 * float(np.mean(np.asarray(firsts) < k)) if firsts else 0.0 for k in ranks}
    result["mAP"] = 100.0 * float(np.mean(aps)) if aps else 0.0
    result["margin"] = 100.0 * float(np.mean(margins)) if margins else 0.0
    result["queries"] = len(firsts)
    return result


def attribute_accuracy(
    predicted: Sequence[dict[str, PredictedAttribute]], records: Sequence[ImageRecord], schema: AttributeSchema
) -> dict[str, float]:
    """Percent of images whose predicted value equals the label, per attribute (images with the
    attribute unknown left out; attributes nobody is labelled with left out)."""
    out = {}
    for name in schema.names:
        pairs = [
            (p[name].value, r.attributes[name])
            for p, r in zip(predicted, records)
            if name in p and r.attributes and name in r.attributes
        ]
        if pairs:
            out[name] = 100.0 * sum(a == b for a, b in pairs) / len(pairs)
    return out


def with_settings(
    manifest: Manifest,
    *,
    test_time_flip: bool | None = None,
    clean_sketches: bool | None = None,
    size: tuple[int, int] | None = None,
) -> Manifest:
    """``manifest`` with its inference settings overridden where a value is given (``size``: the
    input height and width of both modalities)."""
    if test_time_flip is not None:
        manifest = dataclasses.replace(manifest, test_time_flip=test_time_flip)
    if clean_sketches is not None:
        sketch = dataclasses.replace(manifest.preprocess[Modality.SKETCH], clean_sketch=clean_sketches)
        manifest = dataclasses.replace(manifest, preprocess={**manifest.preprocess, Modality.SKETCH: sketch})
    if size is not None:
        height, width = size
        manifest = dataclasses.replace(
            manifest,
            preprocess={m: dataclasses.replace(c, height=height, width=width) for m, c in manifest.preprocess.items()},
        )
    return manifest


def identity_labels(records: Sequence[ImageRecord]) -> list[str]:
    """One "dataset/identity" label per record: what a query and a gallery item match on."""
    return [f"{dataset}/{identity}" for dataset, identity in (r.key for r in records)]


def embed_records(
    embedder: Embedder, records: Sequence[ImageRecord], modality: Modality, chunk: int = 64
) -> EmbeddedBatch:
    embeddings, attributes = [], []
    for start in range(0, len(records), chunk):
        batch = embedder.embed_images([load_rgb(r.path) for r in records[start : start + chunk]], modality)
        embeddings.append(batch.embeddings)
        attributes.extend(batch.attributes)
    emb = np.concatenate(embeddings) if embeddings else np.empty((0, 0), np.float32)
    return EmbeddedBatch(emb, attributes)


def evaluate_records(
    embedder: Embedder,
    records: Sequence[ImageRecord],
    schema: AttributeSchema,
    distractors: np.ndarray | None = None,
) -> dict:
    """Sketch -> photo and photo -> sketch retrieval over ``records`` (queries one modality,
    gallery the other), and attribute accuracy on the photos (and sketches) when the model
    predicts attributes. ``distractors`` (embeddings of photos of other people, one row each):
    sketch -> photo is measured a second time with them added to the gallery."""
    sketches, photos = by_modality(records, Modality.SKETCH), by_modality(records, Modality.PHOTO)
    if not sketches or not photos:
        raise ValueError("evaluation needs both sketches and photos")
    s = embed_records(embedder, sketches, Modality.SKETCH)
    p = embed_records(embedder, photos, Modality.PHOTO)
    s_ids, p_ids = identity_labels(sketches), identity_labels(photos)
    by_style = {}
    for style in sorted({r.style for r in sketches if r.style}):
        rows = [i for i, r in enumerate(sketches) if r.style == style]
        by_style[style] = cmc_map(s.embeddings[rows], [s_ids[i] for i in rows], p.embeddings, p_ids)
    large = None
    if distractors is not None and len(distractors):
        large = large_gallery(s.embeddings, s_ids, p.embeddings, p_ids, distractors)
    return {
        "sketch_to_photo": cmc_map(s.embeddings, s_ids, p.embeddings, p_ids),
        "sketch_to_photo_large": large,
        "sketch_to_photo_by_style": by_style,
        "photo_to_sketch": cmc_map(p.embeddings, p_ids, s.embeddings, s_ids),
        "attribute_accuracy": attribute_accuracy(p.attributes, photos, schema),
        "attribute_accuracy_sketch": attribute_accuracy(s.attributes, sketches, schema),
        "sketches": len(sketches),
        "photos": len(photos),
    }


DISTRACTOR_LABEL = "\0distractor"  # matches no query: a distractor is nobody the queries look for


def large_gallery(
    query: np.ndarray, query_ids: Sequence, gallery: np.ndarray, gallery_ids: Sequence, distractors: np.ndarray
) -> dict[str, float]:
    """CMC/mAP of ``query`` against ``gallery`` plus ``distractors`` (never queries themselves);
    ``gallery`` counts the gallery it was measured on."""
    result = cmc_map(
        query,
        query_ids,
        np.concatenate([gallery, distractors]),
        [*gallery_ids, *[DISTRACTOR_LABEL] * len(distractors)],
    )
    result["gallery"] = len(gallery) + len(distractors)
    return result


def headline(result: dict) -> dict:
    """The flat summary the CLI prints: sketch -> photo R1/R5/R10/R20/mAP plus the rest."""
    s2p = result["sketch_to_photo"]
    out = {k: round(s2p[k], 2) for k in (*[f"R{r}" for r in RANKS], "mAP", "margin")}
    p2s = result["photo_to_sketch"]
    out["photo_to_sketch"] = _rounded(p2s)
    out["attribute_accuracy"] = _rounded(result["attribute_accuracy"])
    if result["attribute_accuracy"]:
        out["attribute_accuracy_mean"] = round(float(np.mean(list(result["attribute_accuracy"].values()))), 2)
    out["queries"] = s2p["queries"]
    out["gallery"] = result["photos"]
    if result.get("sketch_to_photo_large"):
        out["large_gallery"] = _rounded(result["sketch_to_photo_large"], drop=("margin", "queries"))
    if result.get("sketch_to_photo_by_style"):
        out["by_style"] = {
            style: _rounded(figures, drop=("margin",)) for style, figures in result["sketch_to_photo_by_style"].items()
        }
    return out


def _rounded(figures: dict, drop: Sequence[str] = ()) -> dict:
    """``figures`` with floats to two decimals (counts kept as they are), ``drop`` keys left out."""
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items() if k not in drop}


def pool_by_style(results: Sequence[dict], keys: Sequence[str] = ("R1", "R5", "R10", "mAP")) -> dict[str, dict]:
    """Per-style figures of several splits' headline dicts pooled over all their queries (each
    split's figure weighted by its number of queries of that style)."""
    pooled: dict[str, dict] = {}
    for result in results:
        for style, figures in result.get("by_style", {}).items():
            into = pooled.setdefault(style, {"queries": 0, **{k: 0.0 for k in keys}})
            into["queries"] += figures["queries"]
            for k in keys:
                into[k] += figures[k] * figures["queries"]
    for figures in pooled.values():
        for k in keys:
            figures[k] = figures[k] / figures["queries"] if figures["queries"] else 0.0
    return dict(sorted(pooled.items()))


def summarise(
    results: Sequence[dict], keys: Sequence[str] = (*[f"R{r}" for r in RANKS], "mAP")
) -> dict[str, dict[str, float]]:
    """Mean and (population) standard deviation over per-split headline dicts; with distractors,
    the large-gallery figures too (``large R1`` ...)."""
    columns = {k: [r[k] for r in results] for k in keys}
    if results and all("large_gallery" in r for r in results):
        columns.update({f"large {k}": [r["large_gallery"][k] for r in results] for k in keys})
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in columns.items()}
