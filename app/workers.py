"""Background work: every call into the workspace that can take time runs here, never on the GUI
thread. A task is a function run in a QThreadPool; its result, error or progress comes back to the
GUI thread as a queued signal. Tasks can be cancelled, and :meth:`TaskRunner.shutdown` leaves no
thread running."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from core.common.errors import SketchSearchError

log = logging.getLogger(__name__)
_RUNNERS: weakref.WeakSet[TaskRunner] = weakref.WeakSet()


def busy_threads() -> int:
    """Threads of every live runner that are running a task now (tests check this reaches 0)."""
    total = 0
    for runner in list(_RUNNERS):
        try:
            total += runner.active()
        except RuntimeError:  # its window is gone, and deleting a pool waits for its threads
            pass
    return total


def user_message(exc: BaseException) -> str:
    """One line a user can act on; unexpected errors are logged with their traceback."""
    from app.strokes import SketchFileError

    if isinstance(exc, (SketchSearchError, SketchFileError)):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this operation."
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    return f"Unexpected error: {type(exc).__name__}: {exc}"


class Cancelled(Exception):
    """Raised inside a task that noticed its cancel flag (reported as cancelled, not as an error)."""


class TaskSignals(QObject):
    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()  # after any of the three above


class Task(QRunnable):
    """Runs ``function(task)``; the function may call ``task.report(x)`` and check ``task.cancel``."""

    def __init__(self, function: Callable[[Task], Any], name: str = ""):
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the Python object until ``done``
        self.function = function
        self.name = name or getattr(function, "__name__", "task")
        self.cancel = threading.Event()
        self.signals = TaskSignals()

    def report(self, value: Any) -> None:
        self.signals.progress.emit(value)

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def run(self) -> None:
        try:
            if self.cancel.is_set():
                raise Cancelled()
            result = self.function(self)
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every error reaches the user as a message
            self.signals.failed.emit(user_message(exc))
        else:
            self.signals.succeeded.emit(result)
        finally:
            self.signals.done.emit()


class TaskRunner(QObject):
    """Named thread pools: ``search`` (one at a time, newest wins), ``io`` (thumbnails, photos,
        small writes), ``long`` (model loading, imports) and ``record`` (casework writes, one at a time
    and in order)."""

    # record: casework records, off the search thread; train: a model adaptation, for minutes
    POOLS = {"search": 1, "io": 2, "long": 1, "record": 1, "train": 1}

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.pools: dict[str, QThreadPool] = {}
        for name, threads in self.POOLS.items():
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            pool.setExpiryTimeout(2000)
            self.pools[name] = pool
        self._tasks: set[Task] = set()
        self._closed = False
        _RUNNERS.add(self)

    def submit(
        self,
        function: Callable[[Task], Any],
        *,
        pool: str = "io",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        name: str = "",
        owner: QObject | None = None,
    ) -> Task | None:
        """Run ``function(task)`` in ``pool``; the callbacks run on the GUI thread, and not at all once
        the runner is shut down or ``owner`` (e.g. the dialog that asked) is closed or deleted."""
        if self._closed:
            return None
        task = Task(function, name)
        for signal, callback in (
            (task.signals.succeeded, on_result),
            (task.signals.failed, on_error),
            (task.signals.progress, on_progress),
            (task.signals.cancelled, on_cancel),
        ):
            if callback is not None:
                signal.connect(self._unless_closed(callback, owner))
        task.signals.done.connect(lambda: self._tasks.discard(task))
        self._tasks.add(task)
        self.pools[pool].start(task)
        return task

    def _unless_closed(self, callback: Callable[..., None], owner: QObject | None) -> Callable[..., None]:
        """After shutdown, results still queued for the GUI thread are dropped."""

        def deliver(*args):
            if self._closed:
                return
            if owner is not None and (not shiboken6.isValid(owner) or getattr(owner, "closing", False)):
                return
            callback(*args)

        return deliver

    def active(self) -> int:
        return sum(p.activeThreadCount() for p in self.pools.values())

    def pending(self) -> int:
        return len(self._tasks)

    def cancel(self, task: Task) -> None:
        """Ask ``task`` to stop; one still waiting for a thread never starts and is reported cancelled
        at once, so that a Cancel never waits on the work queued before it."""
        task.cancel.set()
        if any(pool.tryTake(task) for pool in self.pools.values()):
            task.signals.cancelled.emit()
            task.signals.done.emit()

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel.set()
        for pool in self.pools.values():
            pool.clear()  # queued tasks never start

    def wait(self, msecs: int = -1) -> bool:
        return all(pool.waitForDone(msecs) for pool in self.pools.values())

    def shutdown(self, msecs: int = 30000) -> bool:
        """Cancel everything, wait up to ``msecs`` for running tasks (0: not at all), drop their
        pending results. Returns whether none is running any more."""
        self._closed = True
        self.cancel_all()
        finished = self.wait(msecs)
        if finished:  # a task still running keeps its reference until it is done
            self._tasks.clear()
        for pool in self.pools.values():
            pool.setExpiryTimeout(0)
        return finished
