"""Who is working: the operator recorded with every search, review, change and report, and the
operating-system account the program ran under, recorded beside it.

One setting serves the window and the command line: the operator stored in the data folder
(``operator.json``, written when the window or ``sketchsearch operator NAME`` sets it), overridden
for one run by ``SKETCHSEARCH_OPERATOR`` and, above that, ``--operator``. With none of them the
operator is the OS account."""

from __future__ import annotations

import getpass
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from core.common.errors import SketchSearchError
from core.common.private_files import write_private_file

UNKNOWN_OPERATOR = "unknown"
OPERATOR_FILE = "operator.json"
OPERATOR_VARIABLE = "SKETCHSEARCH_OPERATOR"
MAX_LENGTH = 200


def os_account() -> str:
    """The operating-system user running SketchSearch (what an audit can trace back to a login)."""
    try:
        return getpass.getuser() or UNKNOWN_OPERATOR
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return UNKNOWN_OPERATOR


@dataclass(frozen=True)
class Operator:
    name: str
    os_account: str
    source: str  # where the name came from: "--operator", the variable, "the data folder's setting", "the OS account"

    @property
    def label(self) -> str:
        """'J. Smith (OS account: root)', or the account alone when it is the name."""
        return describe(self.name, self.os_account)


def describe(name: str, account: str | None) -> str:
    if not account:
        return f"{name} (OS account not recorded)"
    return name if name == account else f"{name} (OS account: {account})"


def operator_name(value: str, origin: str) -> str:
    """A name as typed, on one line: outer white space removed; empty or with control characters
    it is refused, naming where it came from."""
    name = unicodedata.normalize("NFC", str(value)).strip()
    if not name:
        raise SketchSearchError(f"{origin}: the operator's name is empty")
    if len(name) > MAX_LENGTH:
        raise SketchSearchError(f"{origin}: the operator's name is longer than {MAX_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise SketchSearchError(f"{origin}: the operator's name holds a control character")
    return name


def stored_operator(data_dir: Path) -> str | None:
    """The operator saved in the data folder, None when none is (an unreadable file is an error)."""
    path = Path(data_dir) / OPERATOR_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SketchSearchError(f"{path}: cannot read the operator setting ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("operator"), str):
        raise SketchSearchError(f'{path}: not an operator setting (expected {{"operator": NAME}})')
    return operator_name(data["operator"], str(path))


def save_operator(data_dir: Path, name: str) -> str:
    """Store ``name`` as the data folder's operator (0600, whole or not at all); returns it as stored."""
    name = operator_name(name, "operator")
    write_private_file(Path(data_dir) / OPERATOR_FILE, (json.dumps({"operator": name}) + "\n").encode(), "setting")
    return name


def resolve_operator(data_dir: Path | None, given: str | None = None) -> Operator:
    """``given`` (--operator), else the variable, else the data folder's setting, else the OS account."""
    account = os_account()
    if given:
        return Operator(operator_name(given, "--operator"), account, "--operator")
    variable = os.environ.get(OPERATOR_VARIABLE, "")
    if variable.strip():
        return Operator(operator_name(variable, OPERATOR_VARIABLE), account, OPERATOR_VARIABLE)
    stored = stored_operator(data_dir) if data_dir is not None else None
    if stored:
        return Operator(stored, account, "the data folder's setting")
    return Operator(account, account, "the OS account")
