"""Embedding a gallery on a Ray cluster: Ray Data spreads the image files over workers, each worker
loads the model once, reads, hashes, decodes and embeds its files (on its GPU where it has one),
and the rows are written as Parquet shards (``core.gallery.shards``) for
``sketchsearch import-embeddings``.

Without an address a local Ray instance is started, so the same job runs on one machine. Ray and
pyarrow come with the optional ``cluster`` extra and are imported only here, when a job runs: the
desktop application never loads them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.errors import ImageLoadError, SketchSearchError
from core.common.imaging import decode_for_gallery, make_thumbnail, read_file_bytes
from core.gallery.scanning import iter_image_files
from core.gallery.shards import COLUMNS
from core.model.modality import Modality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedJobSummary:
    files: int
    embedded: int
    failed: int
    shards: int
    seconds: float


def list_files(sources: Sequence[Path]) -> list[dict]:
    """Every image under ``sources`` once, with the folder it was found under, as a normal import
    finds them (absolute paths as given, symlinks not resolved); what the listing could not read
    (a broken link, an unreadable folder) comes with its reason, to be recorded in the shards."""
    found: dict[str, dict] = {}
    for source in sources:
        root = Path(source).absolute()
        if not root.exists():
            raise SketchSearchError(f"{source}: no such file or folder")
        folder = str(root if root.is_dir() else root.parent)

        def fail(path: Path, reason: str, folder: str = folder) -> None:
            found.setdefault(str(path), {"path": str(path), "source_folder": folder, "listing_error": reason})

        for path in iter_image_files(root, on_error=fail):
            found.setdefault(str(path), {"path": str(path), "source_folder": folder, "listing_error": ""})
    return list(found.values())


class EmbedWorker:
    """One Ray actor: the model loaded once, then batches of file rows -> shard rows."""

    def __init__(self, model_dir: str | None, device: str | None, threads: int):
        from core.common.paths import default_model_dir
        from core.model.loading import load_model

        self.model = load_model(Path(model_dir) if model_dir else default_model_dir(), device, threads=threads or None)

    def __call__(self, batch: dict[str, np.ndarray]):
        rows = [
            self._prepare(path, folder, listing_error)
            for path, folder, listing_error in zip(batch["path"], batch["source_folder"], batch["listing_error"])
        ]
        good = [i for i, row in enumerate(rows) if row["error"] is None]
        dim = self.model.embedding_dim
        vectors = np.zeros((len(rows), dim), np.float32)
        if good:
            inputs = np.stack([rows[i].pop("network_input") for i in good])
            embedded = self.model.embed_preprocessed(inputs, Modality.PHOTO)
            vectors[good] = embedded.embeddings
            for j, i in enumerate(good):
                rows[i]["attributes"] = json.dumps(
                    {n: [a.value, a.confidence] for n, a in embedded.attributes[j].items()}
                )
        return shard_table(rows, vectors, [row["error"] is not None for row in rows], dim)

    def _prepare(self, path: str, folder: str, listing_error: str) -> dict:
        row = {"path": str(path), "source_folder": str(folder), "embedding_key": self.model.embedding_key}
        if listing_error:
            row["error"] = str(listing_error)
            return row
        try:
            info = os.stat(path)
            data = read_file_bytes(path)
            width, height, image = decode_for_gallery(data, path)
            row.update(
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=info.st_size,
                mtime_ns=info.st_mtime_ns,
                width=width,
                height=height,
                thumbnail=make_thumbnail(image),
                network_input=self.model.preprocess(np.asarray(image), Modality.PHOTO),
                error=None,
            )
        except ImageLoadError as exc:
            row["error"] = exc.reason
        except OSError as exc:
            row["error"] = f"unreadable ({exc.strerror or exc})"
        except Exception as exc:  # noqa: BLE001 - one strange file must never stop the job
            row["error"] = f"unexpected error ({exc.__class__.__name__}: {exc})"
        return row


def shard_table(rows: list[dict], vectors: np.ndarray, failed: list[bool], dim: int):
    """Rows (dicts) and their vectors -> an Arrow table with the shard columns (``core.gallery.shards``)."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("sha256", pa.string()),
            ("path", pa.string()),
            ("source_folder", pa.string()),
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("thumbnail", pa.binary()),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("attributes", pa.string()),
            ("embedding_key", pa.string()),
            ("error", pa.string()),
        ]
    )
    columns = {name: pa.array([row.get(name) for row in rows], schema.field(name).type) for name in COLUMNS}
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.ravel(), pa.float32()), dim, mask=pa.array(failed, pa.bool_())
    )
    return pa.table([columns[name] for name in COLUMNS], schema=schema)


def embed_to_shards(
    sources: Sequence[Path],
    out: Path,
    *,
    address: str | None = None,
    model_dir: Path | None = None,
    device: str | None = None,
    workers: int = 1,
    threads_per_worker: int = 0,
    batch_size: int = 32,
    files_per_shard: int = 10_000,
) -> EmbedJobSummary:
    """Embed every image under ``sources`` on Ray and write Parquet shards into ``out``."""
    try:
        import pyarrow.parquet as pq
        import ray
    except ImportError:
        raise SketchSearchError("the cluster job needs Ray: pip install 'sketchsearch[cluster]'") from None
    from core.common.paths import default_model_dir

    started = time.monotonic()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SketchSearchError(f"{out}: the output folder is not empty (shards of another run?)")
    model_dir = Path(model_dir).absolute() if model_dir else default_model_dir()
    files = list_files(sources)
    if not files:
        raise SketchSearchError("no image files found under " + ", ".join(str(s) for s in sources))
    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        import ray.data

        gpu = device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        blocks = max(workers, -(-len(files) // files_per_shard))
        embedded = ray.data.from_items(files, override_num_blocks=blocks).map_batches(
            EmbedWorker,
            fn_constructor_kwargs={
                "model_dir": str(model_dir),
                "device": "cuda" if gpu else "cpu",
                "threads": threads_per_worker or (0 if gpu else os.cpu_count() or 1),
            },
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=workers,
            num_gpus=1 if gpu else 0,
            num_cpus=1,
        )
        embedded.write_parquet(str(out), min_rows_per_file=files_per_shard)
    finally:
        ray.shutdown()
    errors = pq.read_table(out, columns=["error"]).column("error")
    failed = len(errors) - errors.null_count
    shards = len(list(out.glob("*.parquet")))
    return EmbedJobSummary(len(files), len(errors) - failed, failed, shards, time.monotonic() - started)
