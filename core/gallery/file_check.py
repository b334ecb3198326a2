"""Is a catalogued photo's file still the one that was imported? Results are leads for a person
to review, so a result whose file is gone or holds another photo says so."""

from __future__ import annotations

import hashlib
import os
import stat

from core.common.types import FileCheck, PhotoRecord


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()  # streamed, never read whole


def check_file(record: PhotoRecord) -> FileCheck:
    """Cheap when nothing changed: one stat. Another size means other content; the same size with
    another modification time is hashed (a touched or copied-back file is still the photo)."""
    try:
        info = os.stat(record.path)
    except OSError:
        return FileCheck.MISSING
    if not stat.S_ISREG(info.st_mode):
        return FileCheck.MISSING
    if info.st_size != record.size_bytes:
        return FileCheck.CHANGED
    if info.st_mtime_ns == record.mtime_ns:
        return FileCheck.OK
    try:
        same = file_sha256(record.path) == record.sha256
    except OSError:
        return FileCheck.MISSING
    return FileCheck.OK if same else FileCheck.CHANGED
