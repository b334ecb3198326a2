"""The key that seals audit entries: a file kept outside the data folder (on a token, another
account's share, or with whoever supervises the casework), named by ``--audit-key FILE`` or the
``SKETCHSEARCH_AUDIT_KEY`` setting. Someone who holds the catalogue file but not the key cannot
rewrite the log without its seals showing it (core.casework.audit)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.common.errors import CaseworkError

KEY_ENV = "SKETCHSEARCH_AUDIT_KEY"
_MIN_BYTES = 32


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def load_audit_key(path: Path | None, data_dir: Path) -> bytes | None:
    """The key in ``path`` (else in the file the setting names; None when neither is given)."""
    if path is None:
        setting = os.environ.get(KEY_ENV, "").strip()
        if not setting:
            return None
        path = Path(setting)
    path = Path(path)
    if _inside(path, data_dir):
        raise CaseworkError(
            f"{path}: the audit key must be kept outside the data folder (whoever holds the folder would hold it)"
        )
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise CaseworkError(f"{path}: cannot read the audit key ({exc.strerror or exc})") from None
    if len(key) < _MIN_BYTES:
        raise CaseworkError(f"{path}: an audit key needs at least {_MIN_BYTES} bytes ('sketchsearch audit new-key')")
    return key


def write_new_key(path: Path, data_dir: Path) -> Path:
    """A new random key in ``path`` (0600), never over an existing file."""
    path = Path(path)
    if _inside(path, data_dir):
        raise CaseworkError(f"{path}: keep the audit key outside the data folder")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CaseworkError(f"{path}: already exists; a key is never overwritten") from None
    except OSError as exc:
        raise CaseworkError(f"{path}: cannot write the key ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path
