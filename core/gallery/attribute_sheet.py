"""Reading attribute sheets (CSV) into catalogue rows, checked against the model's schema."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.common.errors import SketchSearchError, UnknownAttributeError
from core.model.attributes import AttributeSchema

SheetKey = Literal["path", "filename", "id"]
SHEET_KEYS: tuple[str, ...] = ("path", "filename", "id")
# files of one person named ``<id>_<anything>``, as in most research galleries (``0012_c1.jpg``)
DEFAULT_ID_PATTERN = r"^([^_]+)_"


@dataclass(frozen=True)
class AttributeSheet:
    rows: list[tuple[int, str, str]]  # (photo_id, name, value)
    unmatched: list[str]  # keys of rows that match no photo
    ambiguous: list[str]  # file names that match photos in several folders (not applied)


def compile_id_pattern(pattern: str) -> re.Pattern[str]:
    """The person-id pattern: its first group (or, without a group, the whole match) is the id."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise SketchSearchError(f"--id-pattern '{pattern}': not a regular expression ({exc})") from None
    if compiled.groups > 1:
        raise SketchSearchError(f"--id-pattern '{pattern}': use at most one group (the person id)")
    return compiled


def ids_by_person(names: Mapping[str, list[int]], pattern: re.Pattern[str]) -> dict[str, list[int]]:
    """File name -> photo ids, regrouped as person id -> photo ids; names the pattern misses are left out."""
    people: dict[str, list[int]] = {}
    for name, photo_ids in names.items():
        found = pattern.search(name)
        if found:
            people.setdefault(found.group(1 if pattern.groups else 0), []).extend(photo_ids)
    return people


def _key_column(path: Path, columns: list[str], key: str | None) -> str:
    if key is not None:
        if key not in SHEET_KEYS:
            raise SketchSearchError(f"{path}: unknown key '{key}' (use one of {', '.join(SHEET_KEYS)})")
        if key not in columns:
            raise SketchSearchError(f"{path}: the first row must name a '{key}' column (--key {key})")
        return key
    for candidate in ("path", "filename"):
        if candidate in columns:
            return candidate
    hint = " (a sheet keyed by person names an 'id' column: use --key id)" if "id" in columns else ""
    raise SketchSearchError(f"{path}: the first row must name a 'path' or 'filename' column{hint}")


def sheet_key_column(path: Path) -> str | None:
    """The key column a sheet has, as ``read_attribute_sheet`` would take it without ``key``
    (``path``, ``filename``, else ``id``); None when unreadable or none (the import says why)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            columns = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return next((key for key in ("path", "filename", "id") if key in columns), None)


def read_attribute_sheet(
    path: Path, schema: AttributeSchema, catalogue, key: str | None = None, id_pattern: str | None = None
) -> AttributeSheet:
    """Read and check a sheet; empty cells are skipped. A row is keyed by ``path`` (absolute, or
    relative to the sheet's folder), by ``filename`` (a bare file name; one that matches photos in
    several folders could be any of them, so its row is reported, not applied) or, with
    ``key="id"``, by a person ``id`` that applies to every photo whose file name gives that id
    through ``id_pattern`` (default ``^([^_]+)_``: the part before the first underscore). Without
    ``key``, ``path`` or ``filename`` is taken, whichever the sheet has.

    A sheet that is not UTF-8 text or not CSV (a field over the csv module's limit) is one error
    naming the sheet and the line."""
    pattern = compile_id_pattern(id_pattern or DEFAULT_ID_PATTERN) if key == "id" else None
    if id_pattern and key != "id":
        raise SketchSearchError("--id-pattern applies to sheets keyed by person: add --key id")
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
        return _read_rows(reader, path, schema, catalogue, key, pattern)
    except csv.Error as exc:
        # the reader counts the lines it finished; the error is in the next one
        raise SketchSearchError(f"{path}, line {reader.line_num + 1}: not a readable CSV ({exc})") from None


def _read_rows(
    reader: csv.DictReader,
    path: Path,
    schema: AttributeSchema,
    catalogue,
    key: str | None,
    pattern: re.Pattern[str] | None,
) -> AttributeSheet:
    key = _key_column(path, reader.fieldnames or [], key)
    names = [c for c in reader.fieldnames or [] if c != key]
    for name in names:
        try:
            schema.spec(name)
        except UnknownAttributeError as exc:
            raise UnknownAttributeError(f"{path}: column '{name}': {exc}") from None
    by_path = catalogue.file_states() if key == "path" else {}
    by_name = catalogue.ids_by_name() if key != "path" else {}
    if pattern is not None:
        by_name = ids_by_person(by_name, pattern)
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
        if key == "filename" and len(ids) > 1:  # a person id names several photos on purpose
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
            sheet.rows.extend((photo_id, name, value) for photo_id in ids)
    return sheet
