"""The deeper checks of ``sketchsearch verify``: every photo's file hashed again (``--rehash``), and
each attribute cache file beside the index compared with the table recomputed from the catalogue.

Both read everything (every file; every attribute row), which the everyday paths avoid on purpose:
an import trusts an unchanged size and modification time, and opening a gallery trusts a cache file
that is well formed. These checks are what catches a file or a cache changed behind those."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import AttributeTable, Catalogue
from core.common.types import FileCheck
from core.gallery.file_check import file_sha256
from core.index import attribute_cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RehashProgress:
    done: int  # files hashed (or found missing) so far
    total: int
    changed: int  # of those, missing or other content
    rate: float  # files per second since the start
    current: str = ""


def rehashed(path: str, sha256: str) -> FileCheck:
    """The file at ``path`` hashed whole and compared with ``sha256``, whatever its size and time."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return FileCheck.MISSING
        return FileCheck.OK if file_sha256(path) == sha256 else FileCheck.CHANGED
    except OSError:
        return FileCheck.MISSING


def rehash_problems(
    catalogue: Catalogue,
    photo_ids: Sequence[int],
    progress: Callable[[RehashProgress], None] | None = None,
    chunk: int = 1000,
) -> list[str]:
    """One line for each photo whose file is gone or whose bytes are not the ones imported."""
    problems: list[str] = []
    started, done = time.monotonic(), 0
    for start in range(0, len(photo_ids), chunk):
        for record in catalogue.photos(photo_ids[start : start + chunk]):
            state = rehashed(record.path, record.sha256)
            if state is not FileCheck.OK:
                problems.append(f"photo {record.id}: {state.warning}: {record.path}")
            done += 1
            if progress is not None:
                rate = done / max(time.monotonic() - started, 1e-9)
                progress(RehashProgress(done, len(photo_ids), len(problems), rate, record.path))
    return problems


@dataclass(frozen=True)
class CacheMismatch:
    path: Path
    photo_ids: np.ndarray  # the photos whose cached values (or presence) differ from the catalogue's

    def describe(self) -> str:
        shown = ", ".join(map(str, self.photo_ids[:10])) + (" ..." if len(self.photo_ids) > 10 else "")
        return (
            f"{self.path}: the cached attribute table does not match the catalogue ({len(self.photo_ids)} photo(s) "
            f"differ, photo id(s) {shown}); it was edited or is stale"
        )


def _cached_schema(path: Path) -> dict[str, tuple[str, ...]] | None:
    """The attribute schema a cache file says it was built for (each model writes its own)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            schema = json.loads(str(data["schema"]))
        return {str(name): tuple(map(str, values)) for name, values in schema.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, EOFError):
        return None


def _as_trusted(
    catalogue: Catalogue, cached: AttributeTable, seq: int, schema: dict
) -> tuple[AttributeTable, AttributeTable] | None:
    """(the table a workspace would use from this cache, brought up to date from the change log; the
    table read whole), read at one change-log position. None when the log cannot bring the cache up
    to date (a workspace then reads the table whole and never trusts the file), or when writes went
    on throughout (another program importing)."""
    for _ in range(3):
        changes = catalogue.attribute_changes_since(seq)
        if changes is None:
            return None
        changed, top = changes
        fresh = catalogue.attribute_table(schema, changed) if len(changed) else None
        whole = catalogue.attribute_table(schema)
        if whole.seq != top:
            continue  # written between the reads: read again
        copy = AttributeTable(
            ids=cached.ids.copy(), names=cached.names, values=cached.values.copy(), confidence=cached.confidence.copy()
        )
        return (copy.merged(fresh, changed) if fresh is not None else copy), whole
    log.info("%s: written to throughout; the attribute cache files were not compared", catalogue.path)
    return None


def _differing_photos(trusted: AttributeTable, whole: AttributeTable) -> np.ndarray:
    """Photos in one table and not the other, and those whose values or confidences differ."""
    common, mine, theirs = np.intersect1d(trusted.ids, whole.ids, assume_unique=True, return_indices=True)
    values = (trusted.values[mine] != whole.values[theirs]).any(axis=1)
    confidence = (trusted.confidence[mine] != whole.confidence[theirs]).any(axis=1)
    return np.union1d(np.setxor1d(trusted.ids, whole.ids, assume_unique=True), common[values | confidence])


def attribute_cache_mismatches(catalogue: Catalogue, folder: Path) -> list[CacheMismatch]:
    """Each attribute cache file in ``folder`` (one per model) that a workspace would trust, compared
    with the table read whole from the catalogue. A file that would not be trusted anyway (unreadable,
    inconsistent, beyond the change log's reach) is left out: a workspace reads the table whole."""
    found = []
    for path in sorted(Path(folder).glob(f"*{attribute_cache.SUFFIX}")):
        schema = _cached_schema(path)
        loaded = attribute_cache.load_table(path, schema) if schema is not None else None
        tables = _as_trusted(catalogue, *loaded, schema) if loaded is not None else None
        if tables is None:
            continue
        differ = _differing_photos(*tables)
        if len(differ):
            found.append(CacheMismatch(path, differ))
    return found
