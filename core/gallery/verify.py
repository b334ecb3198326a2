"""``sketchsearch verify``: do the catalogue, its stored embeddings and the index file agree, is the
attribute change log whole, does each attribute cache file hold the catalogue's values, and (on
request) is every photo's file still the one imported?"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.catalogue.structure import change_log_problems
from core.common.types import FileCheck, VerifyReport
from core.gallery.file_check import check_file
from core.gallery.integrity import RehashProgress, attribute_cache_mismatches, rehash_problems
from core.index.attribute_table import AttributeTables
from core.index.service import IndexService, index_vector_problems
from core.index.vectors import IndexFileError, VectorIndex


def verify_gallery(
    catalogue: Catalogue,
    indexes: IndexService,
    tables: AttributeTables,
    model_name: str,
    files: bool = False,
    rehash: bool = False,
    progress: Callable[[RehashProgress], None] | None = None,
) -> VerifyReport:
    """Do catalogue, stored embeddings and the index file agree? Is the attribute change log
    whole (its table and triggers as created), and does each attribute cache file hold the
    catalogue's values (one that does not is removed, and filters read the catalogue)?
    ``files``: also check that every catalogued photo's file is still the one imported (a stat
    each, a hash when touched); ``rehash``: hash every file instead, whatever its size and
    modification time say (``progress`` is called after each file)."""
    damage = catalogue.quick_check()
    if damage:  # nothing else read from a damaged file can be trusted
        shown = "; ".join(damage[:3]) + (f" (and {len(damage) - 3} more)" if len(damage) > 3 else "")
        return VerifyReport(
            ok=False,
            problems=[
                f"{catalogue.path}: the catalogue file is damaged (SQLite quick_check: {shown}); restore it "
                "from a backup, or import the photos again into a new data folder"
            ],
        )
    with catalogue.read_connection() as connection:
        problems = [f"{catalogue.path}: {p}" for p in change_log_problems(connection)]
    problems += _attribute_cache_problems(catalogue, tables)
    if files or rehash:
        ids = catalogue.attribute_table({}).ids  # every photo, from the catalogue (never a cache)
        problems += rehash_problems(catalogue, ids, progress) if rehash else _file_problems(catalogue, ids)
    photos = catalogue.count_photos()
    embedded = catalogue.embedded_ids(indexes.embedding_key)
    if len(embedded) != photos:
        problems.append(
            f"{photos - len(embedded)} photo(s) have no embedding for model {model_name} "
            f"(key {indexes.embedding_key[:12]})"
        )
    try:
        on_disk = VectorIndex.load(indexes.path, indexes.dim, indexes.embedding_key)
    except IndexFileError as exc:
        problems.append(str(exc))
    else:
        if not np.array_equal(np.sort(on_disk.ids()), embedded):
            problems.append(f"index file holds {len(on_disk)} photos, the catalogue {len(embedded)} embeddings")
        else:
            found: list[np.ndarray] = []  # filled in the same pass that compares the index
            differ = index_vector_problems(on_disk, catalogue, indexes.embedding_key, damaged=found)
            damaged = np.concatenate(found) if found else np.empty(0, np.int64)
            if len(damaged):
                problems.append(
                    f"{len(damaged)} stored embedding(s) are damaged (not finite unit vectors), photo id(s) "
                    f"{', '.join(map(str, damaged[:10]))}: run rebuild-index to embed them again"
                )
            problems.extend(differ)
    return VerifyReport(ok=not problems, problems=problems)


def _file_problems(catalogue: Catalogue, ids: np.ndarray) -> list[str]:
    problems = []
    for start in range(0, len(ids), 1000):
        for record in catalogue.photos(ids[start : start + 1000]):
            state = check_file(record)
            if state is not FileCheck.OK:
                problems.append(f"photo {record.id}: {state.warning}: {record.path}")
    return problems


def _attribute_cache_problems(catalogue: Catalogue, tables: AttributeTables) -> list[str]:
    """Each attribute cache file whose table is not the catalogue's: reported, and removed (this
    service's table is read again from the catalogue when next needed)."""
    problems = []
    for mismatch in attribute_cache_mismatches(catalogue, tables.path.parent):
        try:
            mismatch.path.unlink(missing_ok=True)
            done = "removed, so filters read the values from the catalogue"
        except OSError as exc:
            done = f"not trusted, but it could not be removed ({exc.strerror or exc}): delete it"
        if mismatch.path == tables.path:
            tables.forget()
        problems.append(f"{mismatch.describe()}; it was {done}")
    return problems
