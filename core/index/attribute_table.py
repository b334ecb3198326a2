"""The attribute table that filters read, as a service: built on the first filter (from the cache
file of the last one read when it is there and valid, else read whole from the catalogue) and then
kept up to date for the photos each write touched (the catalogue's change log says which), never
read whole again: a million photos take seconds to read, a thousand imported ones milliseconds."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import AttributeTable, Catalogue
from core.index import attribute_cache
from core.model.attributes import AttributeSchema

log = logging.getLogger(__name__)

# up to this many photos written since the attribute table was read, their rows are read again by id
# whatever the gallery's size (well under a second)
REREAD_BY_ID_UP_TO = 10_000


class AttributeTables:
    """One model's attribute table of one catalogue, cached in ``path`` (beside the index). Thread
    safe: one build or update at a time, while the catalogue reports writes from any thread."""

    def __init__(self, catalogue: Catalogue, schema: AttributeSchema, path: Path):
        self.catalogue = catalogue
        self.path = path
        self._schema_values = {a.name: a.values for a in schema.attributes}
        self._table: AttributeTable | None = None
        self._table_lock = threading.Lock()  # one build or update at a time
        self._touched_lock = threading.Lock()  # guards the next three
        self._touched: list[np.ndarray] = []  # photos written since the table was read
        self._reading = False
        # the change-log position the table is complete up to (None: unknown, follow this process's
        # writes alone), and the one of the cache file on disk
        self.seq: int | None = None
        self._saved_seq: int | None = None
        self._cache_file_distrusted = False  # the cache file disagreed with the catalogue: not read again
        catalogue.on_photos_changed(self._photos_changed)

    def table(self) -> AttributeTable:
        """Effective attribute values of every photo (see ``Catalogue.attribute_table``). The first
        time, from the cache file of the last one read (when it is there and valid), else read whole;
        then brought up to date for just the photos written since: those the catalogue's change log
        names after the table's position (written by any program), and those this process wrote."""
        with self._table_lock:
            with self._touched_lock:
                table = self._table
                touched = np.unique(np.concatenate(self._touched)) if self._touched else np.zeros(0, np.int64)
                self._touched = []
                self._reading = True
            try:
                schema_values = self._schema_values
                seq = self.seq
                if table is None and not self._cache_file_distrusted:
                    cached = attribute_cache.load_table(self.path, schema_values)
                    if cached is not None:
                        table, seq = cached
                        self._saved_seq = seq
                if table is not None and seq is not None:
                    changes = self.catalogue.attribute_changes_since(seq)
                    if changes is None:
                        log.info(
                            "%s: the change log does not reach back to the table's position", self.path.parent.parent
                        )
                        table = None
                    else:
                        changed, seq = changes
                        touched = np.union1d(touched, changed)
                # a photo read by id costs about three times as much as in one pass over all of them
                # (measured at 1M: 35 us, 10 us): past a quarter of the table (and REREAD_BY_ID_UP_TO
                # photos), one pass is cheaper
                whole = table is None or len(touched) > max(len(table.ids) // 4, REREAD_BY_ID_UP_TO)
                if whole:
                    table = self.catalogue.attribute_table(schema_values)
                    seq = table.seq
                elif len(touched):
                    table = table.merged(self.catalogue.attribute_table(schema_values, touched), touched)
            except BaseException:
                with self._touched_lock:
                    self._touched.insert(0, touched)  # read again next time
                    self._reading = False
                raise
            with self._touched_lock:
                self._table = table
                self.seq = seq
                self._reading = False
            if whole and seq is not None:  # keep it for the next opening
                self._save(table, seq, whole=True)
            return table

    def save(self) -> None:
        """Write the table to its cache file, when it has changed since it was written and its
        change-log position is known (at close: the next opening then reads only what changes
        after). The change log is then pruned of what every model's cache has read."""
        with self._table_lock:
            table, seq = self._table, self.seq
            if table is None or seq is None or seq == self._saved_seq:
                return
            self._save(table, seq)

    def close(self) -> None:
        """Save the table (:meth:`save`) and prune the change log for the next opening; a cache not
        written costs that opening time, nothing else, so a failure is only logged."""
        try:
            self.save()
            self.prune_change_log()
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: the attribute table was not saved (%s)", self.path, exc)

    def forget(self) -> None:
        """Drop the table held in memory, and never take it from the cache file again until this
        service has written that file itself: the next filter reads the table whole from the
        catalogue, and close saves nothing over the file meanwhile."""
        with self._table_lock, self._touched_lock:
            self._table = None
            self.seq = None
            self._saved_seq = None
            self._touched = []
            self._cache_file_distrusted = True

    def distrust(self, reason: str) -> None:
        """The table disagrees with the catalogue (a shown photo's stored values contradict it): its
        cache file is removed and the table is read whole from the catalogue when next needed."""
        log.warning("%s: %s; reading the attribute table again from the catalogue", self.path, reason)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: not removed (%s)", self.path, exc.strerror or exc)
        self.forget()

    def _save(self, table: AttributeTable, seq: int, *, whole: bool = False) -> None:
        try:
            attribute_cache.save_table(self.path, table, self._schema_values, seq)
        except OSError as exc:
            log.warning("%s: the attribute table was not saved (%s)", self.path, exc)
            return
        self._saved_seq = seq
        self._cache_file_distrusted = False  # the file now holds this service's table
        self.prune_change_log(read_whole_at=seq if whole else None)

    def prune_change_log(self, read_whole_at: int | None = None) -> None:
        """Drop the change log's rows that every model's cache file beside the index has read (all
        of them when there is none: a table kept in another process's memory then reads whole once).
        The log therefore holds the writes since the oldest cache, or since the last close."""
        folder = self.path.parent
        positions = [attribute_cache.cached_seq(p) for p in folder.glob(f"*{attribute_cache.SUFFIX}")]
        oldest = min((p for p in positions if p is not None), default=None)
        self.catalogue.prune_attribute_changes(
            attribute_cache.MAX_SEQ if oldest is None else oldest, read_whole_at=read_whole_at
        )

    def _photos_changed(self, photo_ids: list[int]) -> None:
        """The catalogue committed a write to these photos (added, removed, or their attribute values)."""
        with self._touched_lock:
            # before the first read nothing needs remembering: that read sees every committed write
            if self._table is not None or self._reading:
                self._touched.append(np.asarray(photo_ids, dtype=np.int64))
