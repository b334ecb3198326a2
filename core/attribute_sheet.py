"""Reading attribute sheets (CSV) into catalogue rows, checked against the model's schema."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from core.errors import SketchSearchError, UnknownAttributeError
from core.model.attributes import AttributeSchema


def read_attribute_sheet(
    path: Path, schema: AttributeSchema, catalogue
) -> tuple[list[tuple[int, str, str]], list[str]]:
    """-> ([(photo_id, name, value)], [keys of rows that match no photo]). Empty cells are skipped.

    A row is keyed by ``path`` (absolute, or relative to the sheet's folder) or by ``filename``
    (a bare file name, which may match several photos, e.g. both photos of one person)."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SketchSearchError(f"{path}: cannot read the attribute sheet ({exc.strerror or exc})") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        key = "path" if "path" in columns else "filename" if "filename" in columns else None
        if key is None:
            raise SketchSearchError(f"{path}: the first row must name a 'path' or 'filename' column")
        names = [c for c in columns if c != key]
        for name in names:
            try:
                schema.spec(name)
            except UnknownAttributeError as exc:
                raise UnknownAttributeError(f"{path}: column '{name}': {exc}") from None
        by_path = catalogue.file_states()
        by_name = catalogue.ids_by_name() if key == "filename" else {}
        rows: list[tuple[int, str, str]] = []
        unmatched: list[str] = []
        for line, record in enumerate(reader, start=2):
            cell = (record.get(key) or "").strip()
            if key == "path":
                full = cell if os.path.isabs(cell) else os.path.abspath(os.path.join(path.parent, cell))
                state = by_path.get(full)
                ids = [state.photo_id] if state else []
            else:
                ids = by_name.get(cell, [])
            if not ids:
                unmatched.append(cell)
                continue
            for name in names:
                value = (record.get(name) or "").strip()
                if not value:
                    continue
                try:
                    schema.check(name, value)
                except UnknownAttributeError as exc:
                    raise UnknownAttributeError(f"{path}, line {line}: {exc}") from None
                rows.extend((photo_id, name, value) for photo_id in ids)
    return rows, unmatched
