"""One writer per data folder, across processes: held while an import or re-index writes, so that
a second one is refused at once, and a search opened meanwhile never rewrites the index file the
running one will save."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from core.catalogue.catalogue import Catalogue
from core.common.errors import SketchSearchError


class WriterLock:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._lock = FileLock(data_dir / "import.lock", mode=0o600, thread_local=False)

    def mark_interrupted_imports(self, catalogue: Catalogue) -> None:
        """An import left 'running' by a process that is gone did not finish; one whose process still
        holds the writer lock is running (a second import started meanwhile must say so, not call
        it interrupted). The lock is held while marking, so that no import starts in between."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return
        try:
            catalogue.mark_interrupted_imports()
        finally:
            self._lock.release()

    def running_elsewhere(self) -> bool:
        """Does another holder (another process, or another workspace on this folder) write now?"""
        if self._lock.is_locked:
            return False  # this one is the writer
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return True
        self._lock.release()
        return False

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock, refused at once (with a one-line reason) when another holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SketchSearchError(
                f"{self.data_dir}: another import is running on this gallery; run this again when it has finished"
            ) from None
        try:
            yield
        finally:
            self._lock.release()
