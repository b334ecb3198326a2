"""One writer per data folder, across processes: held while an import or re-index writes, so that
a second one is refused at once, and a search opened meanwhile never rewrites the index file the
running one will save.

A window holds the gallery too, for as long as it has it open: each window searches the index it
loaded, so a second window on the same gallery changes nothing (an import there would leave the
first window's index behind), and a command that changes the gallery says the window will see the
change only once it opens the gallery again."""

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
        self._window = FileLock(data_dir / "window.lock", mode=0o600, thread_local=False)

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
        return _held_elsewhere(self._lock)

    def hold_for_window(self) -> bool:
        """Hold the gallery for a window until :meth:`release_window`; False when another window
        holds it (this one is then to change nothing)."""
        try:
            self._window.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release_window(self) -> None:
        if self._window.is_locked:
            self._window.release()

    def window_elsewhere(self) -> bool:
        """Has a window (of another workspace or process) this gallery open?"""
        return _held_elsewhere(self._window)

    def window_warning(self) -> str:
        """What a command that changes the gallery says while a window has it open ("" if none has)."""
        if not self.window_elsewhere():
            return ""
        return (
            f"{self.data_dir}: a SketchSearch window has this gallery open; "
            "it sees these changes once it opens the gallery again"
        )

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


def _held_elsewhere(lock: FileLock) -> bool:
    if lock.is_locked:
        return False  # held here
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
