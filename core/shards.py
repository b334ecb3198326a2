"""Embedding shards: Parquet files of photos embedded away from the workstation (``sketchsearch-cluster
embed``), one row per image file found, that ``sketchsearch import-embeddings`` ingests without
re-embedding.

Columns: ``sha256`` (of the file's bytes), ``path`` (as the embedding job found it), ``source_folder``,
``size_bytes``, ``mtime_ns``, ``width``, ``height``, ``thumbnail`` (JPEG), ``embedding`` (float32 list,
unit length), ``attributes`` (JSON: name -> [value, confidence], the model's predictions),
``embedding_key`` (the model's key: vectors of another model are never mixed in) and ``error`` (the
reason a file could not be embedded; the other fields but ``path`` are then empty).

pyarrow comes with the optional ``cluster`` extra; without it these functions say so in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import SketchSearchError

COLUMNS = (
    "sha256",
    "path",
    "source_folder",
    "size_bytes",
    "mtime_ns",
    "width",
    "height",
    "thumbnail",
    "embedding",
    "attributes",
    "embedding_key",
    "error",
)


class ShardError(SketchSearchError):
    """Shards that cannot be ingested (missing, unreadable, or made with another model)."""


@dataclass(frozen=True)
class ShardRow:
    sha256: str | None
    path: str
    source_folder: str | None
    size_bytes: int | None
    mtime_ns: int | None
    width: int | None
    height: int | None
    thumbnail: bytes | None
    embedding: np.ndarray | None
    attributes: dict[str, tuple[str, float]]
    embedding_key: str | None
    error: str | None


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ShardError("reading embedding shards needs pyarrow: pip install 'sketchsearch[cluster]'") from None
    return pq


def shard_files(location: Path) -> list[Path]:
    """The Parquet files of a shard folder (or the one file given), in name order."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise ShardError(f"{location}: no such shard folder or file")
    files = sorted(location.rglob("*.parquet"))
    if not files:
        raise ShardError(f"{location}: no Parquet shards in this folder")
    return files


def check_embedding_key(files: list[Path], expected: str) -> None:
    """Refuse the shards, before anything is written, if any row was embedded with another model."""
    pq = _pyarrow()
    for path in files:
        try:
            keys = pq.read_table(path, columns=["embedding_key"]).column("embedding_key").unique().to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
            raise ShardError(f"{path}: not a readable embedding shard ({exc.__class__.__name__})") from None
        other = [k for k in keys if k is not None and k != expected]
        if other:
            raise ShardError(
                f"{path}: embedded with model key {other[0][:12]}, the loaded model's is {expected[:12]}; "
                "embed again with this model"
            )


def iter_rows(files: list[Path], batch_rows: int = 2048) -> Iterator[ShardRow]:
    pq = _pyarrow()
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            missing = set(COLUMNS) - set(parquet.schema_arrow.names)
            if missing:
                raise ShardError(f"{path}: not an embedding shard (no column {', '.join(sorted(missing))})")
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(COLUMNS)):
                columns = {name: batch.column(name).to_pylist() for name in COLUMNS if name != "embedding"}
                embeddings = batch.column("embedding").to_pylist()
                for i in range(batch.num_rows):
                    vector = embeddings[i]
                    attributes = columns["attributes"][i]
                    yield ShardRow(
                        **{name: columns[name][i] for name in columns if name != "attributes"},
                        embedding=None if vector is None else np.asarray(vector, np.float32),
                        attributes={n: (v, float(c)) for n, (v, c) in json.loads(attributes or "{}").items()},
                    )
        except ShardError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ShardError(f"{path}: not a readable embedding shard ({exc.__class__.__name__}: {exc})") from None
