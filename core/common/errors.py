"""Errors that reach a user: each carries a message that names the thing and the reason."""

from __future__ import annotations

from pathlib import Path


def reason(exc: BaseException) -> str:
    """An exception's reason on one line: a database driver's own message rather than SQLAlchemy's,
    which adds the statement and a link on lines of their own."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else cause.__class__.__name__


class SketchSearchError(Exception):
    """Base of every error SketchSearch reports to a user (one clear line, no traceback)."""


class ImageLoadError(SketchSearchError):
    """A file could not be read as an image."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(SketchSearchError):
    """A model checkpoint folder is missing, incomplete or corrupt."""


class CatalogueError(SketchSearchError):
    """The catalogue cannot be opened or written (unreadable folder, newer schema ...)."""


class UnknownAttributeError(SketchSearchError):
    """An attribute name or value that the model's attribute schema does not know."""


class UnknownPhotoError(SketchSearchError):
    """A photo id that the catalogue does not hold."""


class CaseworkError(SketchSearchError):
    """A case, recorded search or review that does not exist or cannot be changed that way."""
