"""The casework tables as core.casework.tables declares them are the ones the catalogue file holds:
in a new file and in one migrated from a frozen older version (the catalogue creates them with the
SQL of the steps that first added them; it cannot import the casework room)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from core.casework import tables
from core.catalogue.catalogue import Catalogue
from core.catalogue.structure import normalised
from tests.core.test_catalogue import frozen_catalogue


def _declared() -> dict[str, str]:
    """Name -> normalised CREATE statement of every casework table and index, as declared."""
    dialect = sqlite.dialect()
    declared = {}
    for table in tables.metadata.sorted_tables:
        declared[table.name] = normalised(str(CreateTable(table).compile(dialect=dialect)))
        for index in table.indexes:
            declared[index.name] = normalised(str(CreateIndex(index).compile(dialect=dialect)))
    return declared


def _held(path) -> dict[str, str]:
    names = set(_declared())
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index')").fetchall()
    return {name: normalised(sql) for name, sql in rows if name in names}


def _triggers(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {normalised(sql) for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")}


@pytest.mark.parametrize("version", [None, 1, 6])
def test_the_file_holds_the_casework_tables_as_declared(tmp_path, version):
    folder = tmp_path / "new" if version is None else frozen_catalogue(version, tmp_path)
    Catalogue(folder).close()
    path = folder / Catalogue.FILE_NAME
    assert _held(path) == _declared()
    assert {normalised(t) for t in tables.append_only_triggers()} <= _triggers(path)


def test_declared_columns_are_the_columns_a_new_file_has(tmp_path):
    Catalogue(tmp_path).close()
    with sqlite3.connect(tmp_path / Catalogue.FILE_NAME) as db:
        for table in tables.metadata.sorted_tables:
            held = [row[1] for row in db.execute(f"PRAGMA table_info({table.name})")]
            assert held == [column.name for column in table.columns], table.name
