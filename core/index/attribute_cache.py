"""The attribute table kept on disk beside the index, so that the first filter after opening a
gallery reads the photos changed since (the catalogue's change log says which) instead of every
attribute row (10 s at a million photos).

One file per model (``<data>/index/<embedding key[:16]>.attributes.npz``, beside that model's
index: the attribute schema comes with the model): the table's arrays, the schema it was built
for and the change-log ``seq`` it is complete up to. Written atomically (a temporary file, then
renamed; mode 0600). A file that cannot be read, does not hold a consistent table, or was built
for another schema is ignored, with a log line, and the table is read whole again: it is never
trusted over the catalogue."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import AttributeTable
from core.common.private_files import atomic_private_file, make_private_folder

log = logging.getLogger(__name__)

FORMAT = 1
SUFFIX = ".attributes.npz"
MAX_SEQ = 2**63 - 1


def schema_json(schema_values: Mapping[str, Sequence[str]]) -> str:
    return json.dumps({name: list(values) for name, values in schema_values.items()}, sort_keys=False)


def save_table(path: Path, table: AttributeTable, schema_values: Mapping[str, Sequence[str]], seq: int) -> None:
    """Write ``table``, complete up to change-log position ``seq``, atomically."""
    path = Path(path)
    make_private_folder(path.parent, warn=False)
    with atomic_private_file(path) as handle:
        np.savez(
            handle,
            format=np.int64(FORMAT),
            seq=np.int64(seq),
            schema=np.str_(schema_json(schema_values)),
            ids=table.ids,
            values=table.values,
            confidence=table.confidence,
        )


def cached_seq(path: Path) -> int | None:
    """The ``seq`` a cache file is complete up to, without reading its table; None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return int(data["seq"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def load_table(path: Path, schema_values: Mapping[str, Sequence[str]]) -> tuple[AttributeTable, int] | None:
    """The table in ``path`` and its ``seq``, or None (logged) when there is none to trust."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"format {int(data['format'])}, not {FORMAT}")
            if str(data["schema"]) != schema_json(schema_values):
                raise ValueError("built for another attribute schema")
            seq = int(data["seq"])
            ids, values, confidence = data["ids"], data["values"], data["confidence"]
        names = tuple(schema_values)
        shape = (len(ids), len(names))
        if ids.dtype != np.int64 or ids.ndim != 1 or values.dtype != np.int16 or confidence.dtype != np.float32:
            raise ValueError("arrays of the wrong types")
        if values.shape != shape or confidence.shape != shape or seq < 0:
            raise ValueError("arrays of the wrong shapes")
        if len(ids) and (ids[0] < 1 or not np.all(ids[1:] > ids[:-1])):
            raise ValueError("photo ids not ascending")
        limits = np.array([len(schema_values[n]) for n in names], dtype=np.int16)
        if len(ids) and (values.min() < -1 or np.any(values >= limits)):
            raise ValueError("value codes out of range")
        if not np.all((confidence >= 0) & (confidence <= 1)):  # NaN fails too
            raise ValueError("confidences out of range")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("%s: ignoring the cached attribute table (%s); reading it from the catalogue", path, exc)
        return None
    table = AttributeTable(ids=ids, names=names, values=values, confidence=confidence)
    return table, seq
