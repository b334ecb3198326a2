"""Whether the triggers the code relies on are in the file as the code creates them.

Anyone who can write the catalogue file can drop or rewrite a trigger with one line of SQL, so the
checks that matter never rely on them (the audit log's binding does not); but a missing trigger is
itself a sign of tampering, and ``verify`` names it."""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

_NAME = re.compile(r"CREATE TRIGGER (\w+)", re.IGNORECASE)


def _normalised(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").lower()


def trigger_problems(connection: Connection, statements: list[str]) -> list[str]:
    """One line per trigger of ``statements`` (CREATE TRIGGER ...) that is missing from the file or
    whose definition there differs."""
    found = dict(connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all())
    problems = []
    for statement in statements:
        name = _NAME.match(statement.strip()).group(1)
        if name not in found:
            problems.append(f"trigger {name} is missing: it was dropped")
        elif _normalised(found[name] or "") != _normalised(statement):
            problems.append(f"trigger {name} was changed: it is not the one SketchSearch creates")
    return problems
