"""The version of SketchSearch running (recorded with every search and report)."""

from __future__ import annotations


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sketchsearch")
    except PackageNotFoundError:
        return "unknown"
