"""Where SketchSearch finds its bundled resources and keeps its data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

from core.common.errors import SketchSearchError

APP_NAME = "SketchSearch"


def resources_dir() -> Path:
    """The ``resources/`` folder, inside a frozen bundle or beside the source tree."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"  # core/common/paths.py -> the source tree


def default_model_dir() -> Path:
    return resources_dir() / "models" / "default"


def default_data_dir() -> Path:
    """The user's data folder (the install folder may be read-only). ``SKETCHSEARCH_DATA`` overrides it."""
    override = os.environ.get("SKETCHSEARCH_DATA")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def refuse_inside_data_folder(path: Path, data_dir: Path, what: str) -> Path:
    """``path`` when it lies outside ``data_dir``: a report or export written there could replace
    the catalogue, its index or its lock (they are SketchSearch's, not the user's to overwrite)."""
    path = Path(path)
    if path.resolve().is_relative_to(Path(data_dir).resolve()):
        raise SketchSearchError(f"{path}: inside the data folder {data_dir}; write the {what} somewhere else")
    return path
