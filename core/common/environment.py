"""The environment variables SketchSearch reads, each checked where it is read: a value it does not
know is an error that names the variable and what it accepts, never quietly taken as the default."""

from __future__ import annotations

import os

from core.common.errors import SketchSearchError

DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "onnxruntime", "torch")
MAX_THREADS = 1024


def _read(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _choice(name: str, accepted: tuple[str, ...]) -> str | None:
    value = _read(name)
    if value is None:
        return None
    if value.lower() not in accepted:
        raise SketchSearchError(f"{name}={os.environ[name]!r}: not one of {', '.join(accepted)} (or leave it unset)")
    return value.lower()


def device() -> str | None:
    """``SKETCHSEARCH_DEVICE``: 'auto', 'cpu' or 'cuda' (any letter case); None when unset."""
    return _choice("SKETCHSEARCH_DEVICE", DEVICES)


def runtime() -> str | None:
    """``SKETCHSEARCH_RUNTIME``: 'auto', 'onnxruntime' or 'torch'; None when unset."""
    return _choice("SKETCHSEARCH_RUNTIME", RUNTIMES)


def threads() -> int:
    """``SKETCHSEARCH_THREADS``: ONNX Runtime's CPU threads; 0 (the default) lets it choose."""
    value = _read("SKETCHSEARCH_THREADS")
    if value is None:
        return 0
    if not value.isascii() or not value.isdigit() or int(value) > MAX_THREADS:
        raise SketchSearchError(
            f"SKETCHSEARCH_THREADS={os.environ['SKETCHSEARCH_THREADS']!r}: not a whole number from 0 "
            f"(ONNX Runtime chooses) to {MAX_THREADS}"
        )
    return int(value)


def check() -> None:
    """Every variable at once, so that a bad one is said before any work (not when the model loads)."""
    device()
    runtime()
    threads()
