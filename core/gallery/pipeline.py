"""An ordered, bounded producer/consumer: items are prepared on worker threads (decoding, hashing,
resizing release the GIL) while the calling thread consumes results in order (model inference,
database writes). The bound keeps memory flat however large the gallery."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prepared_in_order(
    items: Iterable[T],
    prepare: Callable[[T], R],
    workers: int,
    prefetch: int,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, prepare(item))`` in input order, at most ``prefetch`` items ahead.

    Stops early (without starting more work) once ``cancel`` is set."""
    pending: deque[tuple[T, Future[R]]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prepare") as pool:
        try:
            while True:
                while len(pending) < prefetch and not (cancel and cancel.is_set()):
                    item = next(source, _END)
                    if item is _END:
                        break
                    pending.append((item, pool.submit(prepare, item)))
                if not pending or (cancel and cancel.is_set()):
                    return
                item, future = pending.popleft()
                yield item, future.result()
        finally:
            for _, future in pending:
                future.cancel()


_END = object()
