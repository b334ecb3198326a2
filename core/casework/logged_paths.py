"""File paths as they go into audit payloads, whatever bytes they hold.

On POSIX a name need not be UTF-8 (``caf\\xff``); Python carries such bytes as lone surrogates, which
the log's UTF-8 JSON cannot hold. Each path is therefore logged twice: as readable text, with every
byte that is not UTF-8 written ``\\xNN``, and as its raw bytes in base64 (``<key>_b64``), from which
the path is recovered exactly (the text alone could be a name that holds a backslash)."""

from __future__ import annotations

import base64
import os


def path_text(path: str | bytes | os.PathLike) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_b64(path: str | bytes | os.PathLike) -> str:
    return base64.b64encode(os.fsencode(path)).decode("ascii")


def path_fields(key: str, path: str | bytes | os.PathLike) -> dict[str, str]:
    """``{key: text, key_b64: raw bytes}`` for one path."""
    return {key: path_text(path), f"{key}_b64": path_b64(path)}


def path_from_b64(text: str) -> str:
    """The path a ``*_b64`` field holds, as Python names it (``os.fsencode`` gives its bytes back)."""
    return os.fsdecode(base64.b64decode(text))
