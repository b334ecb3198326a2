"""Who is stating a value: the operator recorded beside every manual or imported attribute."""

from __future__ import annotations

import getpass

UNKNOWN_OPERATOR = "unknown"


def current_operator() -> str:
    """The operating-system user running SketchSearch (what an audit can trace back to a login)."""
    try:
        return getpass.getuser() or UNKNOWN_OPERATOR
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return UNKNOWN_OPERATOR
