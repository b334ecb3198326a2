"""Reading attribute sheets (CSV) into catalogue rows, checked against the model's schema."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import SketchSearchError, UnknownAttributeError
from core.model.attributes import AttributeSchema


@dataclass(frozen=True)
class AttributeSheet:
    rows: list[tuple[int, str, str]]  # (photo_id, name, value)
    unmatched: list[str]  # keys of rows that match no photo
    ambiguous: list[str]  # file names that match photos in several folders (not applied)


def read_attribute_sheet(path: Path, schema: AttributeSchema, catalogue) -> AttributeSheet:
    """Read and check a sheet; empty cells are skipped. A row is keyed by ``path`` (absolute, or
    relative to the sheet's folder) or by ``filename`` (a bare file name); a file name that matches
    photos in several folders could be any of them, so its row is reported, not applied.

    A sheet that is not UTF-8 text or not CSV (a field over the csv module's limit) is one error
    naming the sheet and the line."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SketchSearchError(f"{path}: cannot read the attribute sheet ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SketchSearchError(
            f"{path}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the sheet as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _read_rows(reader, path, schema, catalogue)
    except csv.Error as exc:
        # the reader counts the lines it finished; the error is in the next one
        raise SketchSearchError(f"{path}, line {reader.line_num + 1}: not a readable CSV ({exc})") from None


def _read_rows(reader: csv.DictReader, path: Path, schema: AttributeSchema, catalogue) -> AttributeSheet:
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
    sheet = AttributeSheet([], [], [])
    for line, record in enumerate(reader, start=2):
        cell = (record.get(key) or "").strip()
        if key == "path":
            full = cell if os.path.isabs(cell) else os.path.abspath(os.path.join(path.parent, cell))
            state = by_path.get(full)
            ids = [state.photo_id] if state else []
        else:
            ids = by_name.get(cell, [])
        if not ids:
            sheet.unmatched.append(cell)
            continue
        if len(ids) > 1:
            sheet.ambiguous.append(cell)
            continue
        for name in names:
            value = (record.get(name) or "").strip()
            if not value:
                continue
            try:
                schema.check(name, value)
            except UnknownAttributeError as exc:
                raise UnknownAttributeError(f"{path}, line {line}: {exc}") from None
            sheet.rows.append((ids[0], name, value))
    return sheet
