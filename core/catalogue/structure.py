"""The catalogue's own machinery that someone holding the file can drop or rewrite with plain sqlite3:
the append-only triggers of the casework tables (the audit log's checks never rely on them, but a
missing one is itself a sign of tampering), and the attribute change log (a table, and the triggers
on photos and photo_attributes that fill it). Without it every import fails on the triggers (table
gone), or a cached attribute table silently misses writes (triggers gone or rewritten), so filters
disagree with the stored values.

Each object is compared with the SQL this code creates (SQLite keeps a table's or a trigger's
statement as it was given): whitespace aside, it must be the same."""

from __future__ import annotations

import re

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from core.catalogue.migrations import ATTRIBUTE_CHANGES_DDL, CASEWORK_TRIGGERS
from core.catalogue.orm import AttributeChange, attribute_change_triggers

LOG_TABLE = AttributeChange.__tablename__
# a trigger on these, other than the ones created here, can change what the log records
WATCHED_TABLES = ("photos", "photo_attributes", LOG_TABLE)
_TRIGGER_NAME = re.compile(r"CREATE TRIGGER (\w+) ")


def normalised(sql: str) -> str:
    """The statement with runs of white space made one space, and none around brackets and commas."""
    return re.sub(r"\s*([(),;])\s*", r"\1", re.sub(r"\s+", " ", sql).strip())


def _triggers(statements: list[str]) -> dict[str, str]:
    found = (_TRIGGER_NAME.match(s) for s in statements)
    return {m[1]: normalised(s) for m, s in zip(found, statements) if m}


def log_triggers() -> dict[str, str]:
    """Name -> normalised SQL of the triggers that fill the change log."""
    return _triggers(attribute_change_triggers())


def log_table_forms() -> set[str]:
    """The change log table as a new file (the ORM) and a migrated one (version 6) create it."""
    created = str(CreateTable(AttributeChange.__table__).compile(dialect=sqlite.dialect()))
    return {normalised(created), normalised(ATTRIBUTE_CHANGES_DDL)}


def trigger_problems(connection: Connection, statements: list[str]) -> list[str]:
    """One line per trigger of ``statements`` (CREATE TRIGGER ...) missing from the file or not as
    created there."""
    found = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all())
    problems = []
    for name, sql in _triggers(statements).items():
        if name not in found:
            problems.append(f"trigger {name} is missing: it was dropped")
        elif normalised(found[name] or "") != sql:
            problems.append(f"trigger {name} was changed: it is not the one SketchSearch creates")
    return problems


def change_log_problems(connection: Connection) -> list[str]:
    """What is missing or not as created of the change log: its table, each of its triggers by
    name, and any other trigger on the tables it watches. [] when it is whole."""
    rows = connection.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('table', 'trigger')"
    ).all()
    tables = {name: sql for kind, name, _, sql in rows if kind == "table"}
    triggers = {name: (table, sql) for kind, name, table, sql in rows if kind == "trigger"}
    problems = []
    if LOG_TABLE not in tables:
        problems.append(f"table {LOG_TABLE} (the attribute change log) is missing")
    elif normalised(tables[LOG_TABLE] or "") not in log_table_forms():
        problems.append(
            f"table {LOG_TABLE} (the attribute change log) was altered (its SQL is not the one SketchSearch creates)"
        )
    expected = log_triggers()
    for name, sql in expected.items():
        if name not in triggers:
            problems.append(f"trigger {name} (of the attribute change log) is missing")
        elif normalised(triggers[name][1] or "") != sql:
            problems.append(f"trigger {name} was altered (its SQL is not the one SketchSearch creates)")
    known = set(expected) | set(_triggers(CASEWORK_TRIGGERS))
    for name, (table, _) in sorted(triggers.items()):
        if table in WATCHED_TABLES and name not in known:
            problems.append(f"trigger {name} on {table} is not one SketchSearch creates")
    return problems
