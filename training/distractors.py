"""The large-gallery distractors: people added to a split's test gallery that no training run may see.

The named list below is the protocol of the large-gallery figure (issue #21): all of CUHK01 and
CUHK03 ids 0743-0842 (4,822 photos). A data set is recognised by its folder's name, which is how
the shared research data is laid out; every training source is checked against this list before a
run starts, so a distractor identity cannot reach training through a forgotten flag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.model.network import Modality
from training.data import DataError, ImageRecord, in_id_range, parse_id_range, reid_folder
from training.evaluate import Embedder, embed_records

# data set (folder name) -> inclusive id range of its distractor identities; None: every identity
DISTRACTOR_IDENTITIES: dict[str, tuple[int, int] | None] = {"cuhk01": None, "cuhk03": (743, 842)}
# what a training source takes from a shared set when no --source-ids is given
SOURCE_IDS_DEFAULT: dict[str, tuple[int, int]] = {"cuhk03": (0, 742)}


def source_id_range(root: Path, ids: str | None) -> tuple[int, int] | None:
    """The ids a re-ID training source keeps: ``ids`` (FIRST-LAST) when given, else the shared set's
    default (CUHK03: 0000-0742, the ids that are not large-gallery distractors), else all."""
    if ids:
        return parse_id_range(ids)
    return SOURCE_IDS_DEFAULT.get(Path(root).resolve().name)


def is_distractor(record: ImageRecord) -> bool:
    return record.dataset in DISTRACTOR_IDENTITIES and in_id_range(
        record.identity, DISTRACTOR_IDENTITIES[record.dataset]
    )


def check_no_distractors(records: Iterable[ImageRecord], what: str = "the training source") -> None:
    """Refuse a run whose ``records`` hold any identity of the large-gallery distractors."""
    leaked = sorted({f"{r.dataset}/{r.identity}" for r in records if is_distractor(r)})
    if leaked:
        shown = ", ".join(leaked[:5]) + (" ..." if len(leaked) > 5 else "")
        raise DataError(
            f"{what} holds {len(leaked)} identities of the large-gallery distractors ({shown}); "
            "no training run may see them (CUHK03: use ids 0000-0742, CUHK01: not at all)"
        )


def distractor_records(folders: Sequence[Path]) -> list[ImageRecord]:
    """The distractor photos of ``folders`` (re-ID naming): a named shared set contributes only its
    distractor identities (CUHK03: 0743-0842), any other folder all its photos."""
    records: list[ImageRecord] = []
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):  # a folder named twice counts once
        records.extend(reid_folder(folder, DISTRACTOR_IDENTITIES.get(folder.name)))
    return records


class DistractorCache:
    """Distractor embeddings computed once per model (keyed by the model's embedding key), so a
    benchmark over several splits with one model embeds the 4,822 photos once."""

    def __init__(self, records: Sequence[ImageRecord]):
        self.records = list(records)
        self._embeddings: dict[str, np.ndarray] = {}

    def embeddings(self, embedder: Embedder, key: str) -> np.ndarray:
        if key not in self._embeddings:
            self._embeddings[key] = embed_records(embedder, self.records, Modality.PHOTO).embeddings
        return self._embeddings[key]
