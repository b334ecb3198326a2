"""Finding image files under folders, following symbolic links but never around a loop."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from core.common.imaging import IMAGE_SUFFIXES


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def iter_image_files(root: str | Path, on_error: Callable[[Path, str], None] | None = None) -> Iterator[Path]:
    """Every image file under ``root`` (or ``root`` itself if it is one), absolute, sorted per folder.

    Folders are identified by (device, inode), so a symlink back to an ancestor — or two links to
    one folder — is walked once. What cannot be read is reported through ``on_error`` and skipped."""
    report = on_error or (lambda path, reason: None)
    root = Path(root).absolute()
    if not root.exists():
        report(root, "no such file or folder")
        return
    if not root.is_dir():
        if not is_image_name(root.name):
            report(root, f"not a supported image type (expected one of {', '.join(sorted(IMAGE_SUFFIXES))})")
        elif root.is_file():
            yield root
        else:  # a device, a pipe or a socket (or a link to one): reading it could block or never end
            report(root, "not a regular file")
        return
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            report(folder, f"folder not readable ({exc.strerror or exc})")
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    subfolders.append(Path(entry.path))
                elif is_image_name(entry.name):
                    if entry.is_file(follow_symlinks=True):
                        yield Path(entry.path)
                    elif entry.is_symlink() and not os.path.exists(entry.path):
                        report(Path(entry.path), "unreadable (broken symbolic link)")
                    else:  # a device, a pipe or a socket (or a link to one)
                        report(Path(entry.path), "not a regular file")
            except OSError:
                continue
        stack.extend(reversed(subfolders))
