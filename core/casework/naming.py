"""Case numbers, titles and notes as typed (in the window, on the command line) and as stored: one
form for both, so that ' C1', 'C1' and the full-width 'Ｃ１' are one case; a terminal control
sequence never enters the record; and a number that only looks like another case's is refused."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.common.errors import CaseworkError

if TYPE_CHECKING:
    from sqlalchemy import Connection

# control, format (bidirectional overrides, zero-width characters), surrogate (bytes that are not
# UTF-8) and line or paragraph separator characters: none belongs in a case number or a title
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")  # zero-width (non-)joiner: needed to write Persian and Indic scripts
_LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")

# Greek and Cyrillic letters that read as Latin ones (from Unicode's confusables, TR39), as pairs
_AS_LATIN = str.maketrans(
    dict(
        zip(
            "АВСЕНІЈКМОРЅТУХҮӀԚԜаеһіјорѕсухԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοϲνϳ",
            "ABCEHIJKMOPSTYXYIQWaehijopscyxdqwABEZHIKMNOPTYXocvj",
            strict=True,
        )
    )
)


def printable(value: str) -> str:
    """``value`` for one line of a terminal: control and other invisible characters escaped
    (``\\x1b``, ``\\u202e``, ``\\n``), a byte that is not UTF-8 as ``\\xNN``."""
    out = []
    for ch in value:
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # how Python carries a byte that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def _refuse_controls(what: str, value: str, allowed: frozenset[str] = frozenset()) -> None:
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in _REFUSED:
            if 0xDC80 <= ord(ch) <= 0xDCFF:
                raise CaseworkError(f"{what} '{printable(value)}' holds bytes that are not UTF-8; type it again")
            raise CaseworkError(
                f"{what} '{printable(value)}' holds the control character U+{ord(ch):04X}; "
                "case numbers, titles and notes are plain text"
            )


def case_number(number: str) -> str:
    """The stored form of a case number: NFKC (full-width and other compatibility forms read as the
    plain ones, a no-break space as a space), outer white space removed; a control character is an
    error."""
    normalised = unicodedata.normalize("NFKC", str(number)).strip()
    _refuse_controls("case number", normalised)
    return normalised


def case_title(title: str | None) -> str | None:
    """A title as stored: as typed (NFC, so that one text is one sequence of code points), outer
    white space removed, no control characters. None stays None (unchanged)."""
    if title is None:
        return None
    title = unicodedata.normalize("NFC", title).strip()
    _refuse_controls("case title", title, _JOINERS)
    return title


def case_notes(notes: str | None) -> str | None:
    """Notes as stored: like a title, but several lines (and tabs) are allowed."""
    if notes is None:
        return None
    notes = unicodedata.normalize("NFC", notes).strip()
    _refuse_controls("case notes", notes, _JOINERS | frozenset("\n\r\t"))
    return notes


def scripts(number: str) -> list[str]:
    """The look-alike scripts (Latin, Greek, Cyrillic) whose letters ``number`` holds, in order of
    first use, judged by each letter's Unicode name."""
    found: list[str] = []
    for ch in number:
        if ch.isalpha():
            script = unicodedata.name(ch, "").split(" ")[0]
            if script in _LOOKALIKE_SCRIPTS and script not in found:
                found.append(script)
    return found


def mixed_scripts_warning(number: str) -> str | None:
    """A line to warn with when a case number mixes Latin, Greek and Cyrillic letters (one typed on
    another keyboard layout reads the same but is another case), else None."""
    found = scripts(number)
    if len(found) < 2:
        return None
    names = [s.capitalize() for s in found]
    return f"case number '{printable(number)}' mixes {', '.join(names[:-1])} and {names[-1]} letters"


def looks_like(number: str, other: str) -> bool:
    """Two different numbers that read the same (Cyrillic 'С1' and Latin 'C1')."""
    return number != other and number.translate(_AS_LATIN) == other.translate(_AS_LATIN)


def new_case_fields(number: str, title: str, notes: str, existing: Iterable[str]) -> tuple[str, str | None, str | None]:
    """A new case's number, title and notes as stored; a number that reads the same as one of the
    ``existing`` case numbers without being it is refused."""
    number = case_number(number)
    for other in existing:
        if looks_like(number, other):
            raise CaseworkError(
                f"case number '{printable(number)}' looks like case '{printable(other)}' but is spelt with other "
                f"letters ({' and '.join(s.capitalize() for s in scripts(number)) or 'no letters'}); use case "
                f"'{printable(other)}' or another number"
            )
    return number, case_title(title), case_notes(notes)


def lookup_number(connection: Connection, number: str) -> str:
    """The number to find a case by: as given when a case is stored under exactly that (one from a
    catalogue written before numbers were normalised, which may hold anything), else normalised."""
    # here: the command line prints with this module before any database is read
    from sqlalchemy import select

    from core.casework.tables import cases

    given = str(number)
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in given):  # SQLite text cannot hold a lone surrogate
        if connection.execute(select(cases.c.id).where(cases.c.number == given)).first():
            return given
    return case_number(given)
