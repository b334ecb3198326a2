"""A model as a gallery holds it: its manifest (name, embedding key, dimension, attribute schema)
read at once, the network loaded (on ONNX Runtime or torch, see core.model.loading) the first time
it is needed: reading a catalogue, its statistics, attributes and index needs only the manifest."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from core.common import environment
from core.common.errors import CheckpointError
from core.common.types import ModelInfo
from core.model.manifest import WEIGHTS_FILE, Manifest, verified_manifest

if TYPE_CHECKING:
    from core.model.embedded import EmbeddingModel


class ModelHandle:
    """The model in ``model_dir`` on ``device``, or an already loaded ``model`` (switching galleries
    need not load it again). Thread safe: the network loads once."""

    def __init__(self, model_dir: Path, device: str | None = None, model: EmbeddingModel | None = None):
        self.model_dir = Path(model_dir)
        self.device = device
        self._model = model
        self._lock = threading.Lock()
        self.manifest: Manifest = model.manifest if model is not None else verified_manifest(self.model_dir)

    @property
    def model(self) -> EmbeddingModel:
        """The network, loaded the first time it is needed."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from core.model.loading import load_model

                    loaded = load_model(self.model_dir, self.device)
                    if loaded.embedding_key != self.manifest.embedding_key:  # the folder changed under us
                        raise CheckpointError(f"{self.model_dir}: the model changed while the gallery was open")
                    self._model = loaded
        return self._model

    @property
    def weights_file(self) -> Path | None:
        """The weights the model was read from (None when it came from no folder)."""
        folder = self._model.folder if self._model is not None else self.model_dir
        return folder / WEIGHTS_FILE if folder is not None and (folder / WEIGHTS_FILE).is_file() else None

    def loaded(self) -> EmbeddingModel | None:
        """The network if it is loaded already, else None."""
        return self._model

    def info(self) -> ModelInfo:
        """Without loading the network, ``device`` is the one asked for (``auto`` by default)."""
        m = self.manifest
        if self._model is not None:
            device = str(self._model.device)
            runtime = self._model.runtime
        else:
            device = (self.device or environment.device() or "auto").lower()
            runtime = "not loaded"
        return ModelInfo(
            name=m.name,
            sha256=m.weights_sha256,
            backbone=m.backbone,
            device=device,
            runtime=runtime,
            attributes_trained=m.attribute_head_trained,
            provenance=m.provenance,
            licence=m.licence,
            data_terms=m.data_terms,
            loaded=self._model is not None,
        )
