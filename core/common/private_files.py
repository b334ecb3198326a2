"""Files and folders of a gallery's data folder, readable by the user alone.

The catalogue holds thumbnails, paths and attributes of the people in a gallery, so the data
folder is created 0700 and every file in it 0600, whatever the umask."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from core.common.errors import SketchSearchError

log = logging.getLogger(__name__)

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_folder(folder: Path, *, warn: bool = True) -> None:
    """Create ``folder`` (and missing parents) readable by the user alone; an existing folder that
    others may read is left as it is, with a warning."""
    if folder.is_dir():
        mode = folder.stat().st_mode & 0o777
        if warn and mode & 0o077:
            log.warning("%s: the data folder can be read by other users (mode %o); chmod 700 it", folder, mode)
        return
    folder.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(folder, PRIVATE_FOLDER_MODE)  # mkdir's mode is masked by the umask


def create_private_file(path: Path) -> None:
    """Create an empty file readable by the user alone, unless it exists. SQLite gives its -wal and
    -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.fchmod(fd, PRIVATE_FILE_MODE)
    os.close(fd)


@contextmanager
def atomic_private_file(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` whole or not at all: the caller writes to a 0600 temporary file beside it,
    which is flushed to disk and renamed over ``path`` on success, and removed on any error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private_file(path: Path, data: bytes, what: str = "file") -> Path:
    """``data`` to ``path`` whole or not at all, 0600 (a report or an export): a full disk leaves
    the older file as it was, never a truncated one. One-line error naming the file."""
    path = Path(path)
    try:
        with atomic_private_file(path) as handle:
            handle.write(data)
    except OSError as exc:
        raise SketchSearchError(f"{path}: cannot write the {what} ({exc.strerror or exc})") from None
    return path
