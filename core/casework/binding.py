"""Casework rows bound into the audit log.

Every write of a casework row puts the sha256 of the row's full content (a canonical encoding of
each column, blobs by their own sha256) into the audit entry written with it, under the payload's
``bound_rows``. ``audit verify`` reads every row of every bound table again and compares, in both
directions: an entry whose row is gone, a row that no entry binds, and a row whose content no
longer matches the newest entry that bound it are each named. So a change made with plain SQL,
triggers dropped or not, shows unless the chain itself is rewritten, which the head printed in
reports and the keyed seals catch (core.casework.audit).

An import run's record in the catalogue's import log is bound the same way into the entry that
ends the run (``import_run_sha256``, beside its ``import_id``); a run that never reached its end,
or one from before runs were bound, is in no entry, so those rows are compared one way only: what
an entry bound must still be there as it was bound."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, TableClause, column, select, table, type_coerce
from sqlalchemy.types import NullType

from core.casework import tables
from core.casework.audit import canonical_json


@dataclass(frozen=True)
class BoundTable:
    table: TableClause
    key: str  # the rows sharing a key are bound together (a ranking's results), ordered by ``order``
    columns: tuple[str, ...]
    order: str = ""

    @property
    def name(self) -> str:
        return self.table.name

    def rows(self):
        """The bound columns as SQLite holds them (untyped: a time is the text stored, a damaged
        value is read as it is, never converted on the way), ordered by key."""
        raw = [type_coerce(self.table.c[column], NullType()) for column in self.columns]
        order = [self.table.c[self.key]] + ([self.table.c[self.order]] if self.order else [])
        return select(*raw).order_by(*order)


# Every column a person reads in a case; a column added later must be added here with a migration
# that binds the existing rows again.
BOUND_TABLES = (
    BoundTable(tables.cases, "id", ("id", "number", "title", "operator", "notes", "opened_at", "closed_at")),
    BoundTable(
        tables.searches,
        "id",
        (
            "id",
            "case_id",
            "query_kind",
            "query_name",
            "query_sha256",
            "query_png",
            "query_strokes",
            "query_file",
            "operator",
            "app_version",
            "created_at",
        ),
    ),  # fmt: skip
    BoundTable(
        tables.search_revisions,
        "id",
        (
            "id",
            "search_id",
            "revision",
            "model_name",
            "embedding_key",
            "gallery_photos",
            "gallery_last_import",
            "filters_json",
            "top_k",
            "started_at",
            "finished_at",
            "operator",
            "audit_seq",
        ),
    ),  # fmt: skip
    BoundTable(
        tables.search_results,
        "revision_id",
        ("revision_id", "rank", "photo_id", "photo_sha256", "score", "thumbnail"),
        order="rank",
    ),
    BoundTable(
        tables.reviews, "id", ("id", "search_id", "photo_id", "photo_sha256", "rank", "mark", "note", "operator", "at")
    ),
)
TABLES = {bound.name: bound for bound in BOUND_TABLES}

# the catalogue's table, named here by its columns (its declaration is the catalogue's own)
_IMPORT_RUN_COLUMNS = ("id", "started_at", "finished_at", "roots", "status", "added", "updated", "unchanged", "failed")
IMPORT_RUNS = BoundTable(table("import_runs", *map(column, _IMPORT_RUN_COLUMNS)), "id", _IMPORT_RUN_COLUMNS)


def _value(value):
    """A column's value as canonical JSON holds it: a blob by its length and sha256, a float by its
    shortest repr (json's own), so that 1 and 1.0 differ as SQLite stores them."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return {"blob_sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
    if isinstance(value, float):
        return {"real": repr(value)}
    return value


def _digest(table: BoundTable, rows: list) -> str:
    encoded = [[[name, _value(v)] for name, v in zip(table.columns, row, strict=True)] for row in rows]
    return hashlib.sha256(canonical_json([table.name, encoded]).encode()).hexdigest()


def digests(connection: Connection, table_name: str, keys: Iterable[int] | None = None) -> dict[str, str]:
    """Key (as text) -> sha256 of the rows with that key, for ``keys`` or for every row."""
    return _digests(connection, TABLES[table_name], keys)


def _digests(connection: Connection, bound: BoundTable, keys: Iterable[int] | None = None) -> dict[str, str]:
    query = bound.rows()
    if keys is not None:
        keys = sorted({int(k) for k in keys})
        if not keys:
            return {}
        query = query.where(bound.table.c[bound.key].in_(keys))
    key_at = bound.columns.index(bound.key)
    grouped: dict[str, list] = {}
    for row in connection.execute(query):
        grouped.setdefault(str(row[key_at]), []).append(tuple(row))
    return {key: _digest(bound, rows) for key, rows in grouped.items()}


def bind(connection: Connection, **keys: Iterable[int]) -> dict[str, dict[str, str]]:
    """The ``bound_rows`` part of an audit payload: ``bind(c, reviews=[7])`` -> {"reviews": {"7": sha}}.
    Read back from the file, in the writing transaction, so it is exactly what verify will read."""
    bound = {name: digests(connection, name, ids) for name, ids in keys.items()}
    missing = [f"{name} {k}" for name, ids in keys.items() for k in ids if str(k) not in bound[name]]
    if missing:
        raise RuntimeError(f"bound rows not written: {', '.join(missing)}")
    return bound


def all_rows(connection: Connection) -> dict[str, dict[str, str]]:
    """Every bound table's rows, as :func:`bind` gives them."""
    return {table.name: digests(connection, table.name) for table in BOUND_TABLES}


@dataclass(frozen=True)
class RowProblem:
    seq: int | None  # the entry that bound the row (None: no entry binds it)
    message: str


def compare(entries: Iterable[tuple[int, dict]], connection: Connection) -> list[RowProblem]:
    """Problems between what ``entries`` ((seq, payload) oldest first) bound and the rows there are
    now; the newest entry that binds a key holds (a case edited later binds its new content)."""
    expected: dict[tuple[str, str], tuple[str, int]] = {}
    problems = []
    for seq, payload in entries:
        bound = payload.get("bound_rows") if isinstance(payload, dict) else None
        if bound is None:
            continue
        try:
            for table_name, rows in bound.items():
                if table_name not in TABLES:
                    raise ValueError(table_name)
                for key, digest in rows.items():
                    expected[(table_name, str(key))] = (digest, seq)
        except (AttributeError, ValueError):
            problems.append(RowProblem(seq, f"entry {seq} binds rows in a form SketchSearch never writes"))
    actual = all_rows(connection)
    for (table_name, key), (digest, seq) in sorted(expected.items(), key=lambda item: item[1][1]):
        found = actual.get(table_name, {}).get(key)
        what = _describe(table_name, key)
        if found is None:
            problems.append(RowProblem(seq, f"{what}, recorded in entry {seq}, is missing: it was deleted"))
        elif found != digest:
            problems.append(RowProblem(seq, f"{what} differs from what entry {seq} recorded: it was edited"))
    for bound in BOUND_TABLES:
        for key in actual[bound.name]:
            if (bound.name, key) not in expected:
                problems.append(
                    RowProblem(None, f"{_describe(bound.name, key)} is in no audit entry: it was added behind the log")
                )
    return problems


def bind_import_run(connection: Connection, import_id: int) -> dict[str, str]:
    """The part of an import run's closing entry that binds its record: {"import_run_sha256": sha}."""
    found = _digests(connection, IMPORT_RUNS, [import_id])
    if str(import_id) not in found:
        raise RuntimeError(f"import run {import_id} is not in the import log")
    return {"import_run_sha256": found[str(import_id)]}


def compare_import_runs(entries: Iterable[tuple[int, dict]], connection: Connection) -> list[RowProblem]:
    """Problems between the import runs ``entries`` ((seq, payload) oldest first) bound and the import
    log now: a bound run deleted or edited."""
    expected: dict[int, tuple[str, int]] = {}
    problems = []
    for seq, payload in entries:
        if not isinstance(payload, dict) or "import_run_sha256" not in payload:
            continue
        import_id, digest = payload.get("import_id"), payload["import_run_sha256"]
        if type(import_id) is not int or not isinstance(digest, str):
            problems.append(RowProblem(seq, f"entry {seq} binds an import run in a form SketchSearch never writes"))
            continue
        expected[import_id] = (digest, seq)
    actual = _digests(connection, IMPORT_RUNS, expected)
    for import_id, (digest, seq) in sorted(expected.items(), key=lambda item: item[1][1]):
        found = actual.get(str(import_id))
        if found is None:
            problems.append(
                RowProblem(seq, f"import run {import_id}, recorded in entry {seq}, is missing: it was deleted")
            )
        elif found != digest:
            problems.append(
                RowProblem(seq, f"import run {import_id} differs from what entry {seq} recorded: it was edited")
            )
    return problems


def _describe(table_name: str, key: str) -> str:
    return {
        "cases": f"case row {key}",
        "searches": f"search {key}",
        "search_revisions": f"search revision row {key}",
        "search_results": f"the ranking stored for search revision row {key}",
        "reviews": f"review {key}",
    }[table_name]
