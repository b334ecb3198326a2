"""Is a catalogued photo's file still the one that was imported? Results are leads for a person
to review, so a result whose file is gone or holds another photo says so."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import OrderedDict

from core.common.types import FileCheck, PhotoRecord

# Hash verdicts of touched files, by what the file is now (path, device, inode, size, modification
# time, and change time, which every write and every setting of the times moves) and what it should
# hold: a file copied back with new times is hashed once, not at every search that shows it (the
# live search runs one per stroke).
_VERDICTS: OrderedDict[tuple, bool] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()
_MAX_VERDICTS = 10_000


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()  # streamed, never read whole


def check_file(record: PhotoRecord) -> FileCheck:
    """Cheap when nothing changed: one stat. Another size means other content; the same size with
    another modification time is hashed (a touched or copied-back file is still the photo), once
    while the file stays as it is."""
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
    key = (record.path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, record.sha256)
    with _VERDICTS_LOCK:
        same = _VERDICTS.get(key)
    if same is None:
        try:
            same = file_sha256(record.path) == record.sha256
        except OSError:
            return FileCheck.MISSING
        with _VERDICTS_LOCK:
            _VERDICTS[key] = same
            while len(_VERDICTS) > _MAX_VERDICTS:
                _VERDICTS.popitem(last=False)
    return FileCheck.OK if same else FileCheck.CHANGED
