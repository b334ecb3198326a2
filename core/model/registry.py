"""The installed models: the bundled one and those adapted to a gallery, kept in the data folder's
``models/``. A folder counts only when its manifest reads and its weights file is there; hidden
folders (a model being written, a run's training state) never do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.common.errors import CheckpointError
from core.common.paths import default_model_dir
from core.model.checkpoint import WEIGHTS_FILE, read_manifest

MODELS_FOLDER = "models"


@dataclass(frozen=True)
class InstalledModel:
    path: Path
    name: str
    kind: str  # "bundled" or the manifest's provenance kind
    weights_sha256: str
    base: str  # the model it was adapted from ("" for the bundled one)
    created: str  # when it was written (adapted models), else ""
    bundled: bool


def models_dir(data_dir: Path) -> Path:
    """Where the models adapted to the gallery in ``data_dir`` are kept."""
    return Path(data_dir) / MODELS_FOLDER


def describe(path: Path, bundled: bool = False) -> InstalledModel:
    manifest = read_manifest(path)
    if not (Path(path) / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_FILE}")
    provenance = manifest.provenance or {}
    base = provenance.get("base_model") or {}
    return InstalledModel(
        path=Path(path),
        name=manifest.name,
        kind="bundled" if bundled else str(provenance.get("kind", "")),
        weights_sha256=manifest.weights_sha256,
        base=str(base.get("name", "")),
        created=str(provenance.get("created", "")),
        bundled=bundled,
    )


def installed_models(data_dir: Path, bundled: Path | None = None) -> list[InstalledModel]:
    """The bundled model first, then the adapted models of ``data_dir``, newest first."""
    found = []
    bundled = bundled or default_model_dir()
    try:
        found.append(describe(bundled, bundled=True))
    except CheckpointError:
        pass  # a broken install shows only what it has; opening the gallery reports the error
    folder = models_dir(data_dir)
    adapted = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                adapted.append(describe(path))
            except CheckpointError:
                continue
    adapted.sort(key=lambda m: m.created, reverse=True)
    return found + adapted
