"""Embedding shards: Parquet files of photos embedded away from the workstation (``sketchsearch-cluster
embed``), one row per image file found, that ``sketchsearch import-embeddings`` ingests without
re-embedding.

Columns: ``sha256`` (of the file's bytes), ``path`` (as the embedding job found it), ``source_folder``,
``size_bytes``, ``mtime_ns``, ``width``, ``height``, ``thumbnail`` (JPEG), ``embedding`` (float32 list,
unit length), ``attributes`` (JSON: name -> [value, confidence], the model's predictions),
``embedding_key`` (the model's key: vectors of another model are never mixed in) and ``error`` (the
reason a file could not be embedded; the other fields but ``path`` are then empty).

Shards come from elsewhere, so nothing in them is trusted: :func:`check_rows` reads every row before
anything is stored, and one bad row refuses the ingest (see there).

pyarrow comes with the optional ``cluster`` extra; without it these functions say so in one line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.errors import SketchSearchError
from core.model.attributes import AttributeSchema

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
    shard: Path  # the file it was read from
    number: int  # its row in that file, counted from 1


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


def check_rows(files: list[Path], expected_key: str, dim: int, schema: AttributeSchema, batch_rows: int = 2048) -> None:
    """Check every row of every shard before anything is stored, and refuse them all at the first bad
    row, naming its shard and row (counted from 1): a vector that is not a finite unit vector of the
    model's size, a field missing from a photo's row, a malformed sha256, an attribute, value or
    confidence the model's schema does not have. A row with an ``error`` (a file the job could not
    embed) needs only its path and embedding key. One bad row refuses the whole ingest, not only its
    shard: nothing is stored, so that a shard is never half trusted."""
    pq = _pyarrow()
    for path in files:
        number = 0
        for batch in _batches(pq, path, batch_rows):
            scalars = [name for name in COLUMNS if name not in ("embedding", "thumbnail")]
            columns = {name: batch.column(name).to_pylist() for name in scalars}
            # a thumbnail as whether it starts as a JPEG does (None: there is none), not its bytes
            thumbnails = batch.column("thumbnail").cast("binary")  # a column of nulls alone may be typed null
            heads = _pyarrow_compute().binary_slice(thumbnails, 0, len(_JPEG)).to_pylist()
            columns["thumbnail"] = [None if head is None else head == _JPEG for head in heads]
            lengths, vectors = _embeddings(batch.column("embedding"), dim)
            finite = np.isfinite(vectors).all(axis=1)
            with np.errstate(over="ignore", invalid="ignore"):
                norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
            for i in range(batch.num_rows):
                number += 1
                row = {name: values[i] for name, values in columns.items()}
                problem = _row_problem(row, int(lengths[i]), bool(finite[i]), norms[i], expected_key, dim, schema)
                if problem is not None:
                    raise ShardError(f"{path}: row {number}: {problem}; nothing was ingested")


def iter_rows(files: list[Path], dim: int, batch_rows: int = 2048) -> Iterator[ShardRow]:
    """The rows of the shards in order (checked first with :func:`check_rows`)."""
    pq = _pyarrow()
    for path in files:
        number = 0
        for batch in _batches(pq, path, batch_rows):
            columns = {name: batch.column(name).to_pylist() for name in COLUMNS if name != "embedding"}
            lengths, vectors = _embeddings(batch.column("embedding"), dim)
            for i in range(batch.num_rows):
                number += 1
                attributes = columns["attributes"][i]
                yield ShardRow(
                    **{name: columns[name][i] for name in columns if name != "attributes"},
                    embedding=vectors[i].copy() if lengths[i] == dim else None,
                    attributes={n: (v, float(c)) for n, (v, c) in json.loads(attributes or "{}").items()},
                    shard=path,
                    number=number,
                )


# -- checking --------------------------------------------------------------------------------------
UNIT_TOLERANCE = 1e-3  # |length - 1| of a stored vector: the tolerance core.index.service.unit_rows allows
_SHA256 = re.compile("[0-9a-f]{64}")
_JPEG = b"\xff\xd8"  # the start of every JPEG file (thumbnails are JPEG)
_PHOTO_FIELDS = ("sha256", "source_folder", "size_bytes", "mtime_ns", "width", "height", "thumbnail", "attributes")
_TYPES = {
    "sha256": "string",
    "path": "string",
    "source_folder": "string",
    "size_bytes": "integer",
    "mtime_ns": "integer",
    "width": "integer",
    "height": "integer",
    "thumbnail": "binary",
    "embedding": "list of numbers",
    "attributes": "string",
    "embedding_key": "string",
    "error": "string",
}


def _pyarrow_compute():
    import pyarrow.compute as pc

    return pc


def _type_is(data_type, kind: str) -> bool:
    import pyarrow as pa

    t = pa.types
    if kind == "list of numbers":
        lists = t.is_list(data_type) or t.is_large_list(data_type) or t.is_fixed_size_list(data_type)
        return lists and (t.is_floating(data_type.value_type) or t.is_integer(data_type.value_type))
    return {
        "string": lambda: t.is_string(data_type) or t.is_large_string(data_type) or t.is_null(data_type),
        "integer": lambda: t.is_integer(data_type) or t.is_null(data_type),
        "binary": lambda: t.is_binary(data_type) or t.is_large_binary(data_type) or t.is_null(data_type),
    }[kind]()


def _batches(pq, path: Path, batch_rows: int):
    """The record batches of one shard; a file that is not an embedding shard, or cannot be read, is
    refused in one line naming it."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        missing = set(COLUMNS) - set(schema.names)
        if missing:
            raise ShardError(f"{path}: not an embedding shard (no column {', '.join(sorted(missing))})")
        for name in COLUMNS:
            if not _type_is(schema.field(name).type, _TYPES[name]):
                raise ShardError(f"{path}: not an embedding shard (column {name} holds {schema.field(name).type})")
        yield from parquet.iter_batches(batch_size=batch_rows, columns=list(COLUMNS))
    except ShardError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
        raise ShardError(f"{path}: not a readable embedding shard ({exc.__class__.__name__}: {exc})") from None


def _embeddings(column, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a batch: its embedding's length (-1 when it has none) and, for the rows of length
    ``dim``, the vector as float32 (zeros for the others). Read as arrays, not row by row: a value
    beyond float32's range becomes infinite, a null inside a vector NaN (both then refused)."""
    pc = _pyarrow_compute()
    lengths = pc.list_value_length(column).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        flat = np.asarray(pc.list_flatten(column).to_numpy(zero_copy_only=False), np.float32)
    present = np.maximum(lengths, 0)  # the flattened values hold the vectors of the rows that have one
    starts = np.cumsum(present) - present
    vectors = np.zeros((len(lengths), dim), np.float32)
    full = lengths == dim
    vectors[full] = flat[starts[full, None] + np.arange(dim)]
    return lengths, vectors


def _quoted(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_problem(
    row: dict, length: int, finite: bool, norm: float, expected_key: str, dim: int, schema: AttributeSchema
) -> str | None:
    """Why a row cannot be stored, or None. ``row["thumbnail"]``: whether it is a JPEG (None: no thumbnail)."""
    if not row["path"]:
        return "no path"
    if row["embedding_key"] is None:
        return "no embedding key"
    if row["embedding_key"] != expected_key:
        return f"embedded with model key {row['embedding_key'][:12]}, the loaded model's is {expected_key[:12]}"
    if row["error"] is not None:
        return None  # a file the job could not embed: recorded with its reason, nothing stored
    for name in _PHOTO_FIELDS:
        if row[name] is None:
            return f"no {name} (and no error saying why)"
    if length < 0:
        return "no embedding (and no error saying why)"
    if not _SHA256.fullmatch(row["sha256"]):
        return f"sha256 {_quoted(row['sha256'])} is not 64 lowercase hex digits"
    if row["size_bytes"] < 0:
        return f"size_bytes {row['size_bytes']} is negative"
    for name in ("width", "height"):
        if row[name] <= 0:
            return f"{name} {row[name]} is not a positive image size"
    if not row["thumbnail"]:
        return "the thumbnail is not a JPEG"
    if length != dim:
        return f"a {length}-d embedding, the model's are {dim}-d"
    if not finite:
        return "the embedding holds NaN or infinite values"
    if not abs(norm - 1.0) <= UNIT_TOLERANCE:
        return f"the embedding is not a unit vector (length {norm:.4g})"
    return _attributes_problem(row["attributes"], schema)


def _attributes_problem(text: str, schema: AttributeSchema) -> str | None:
    try:
        predicted = json.loads(text)
    except ValueError:
        predicted = None
    if not isinstance(predicted, dict):
        return f"the attributes are not a JSON object ({_quoted(text)})"
    for name, pair in predicted.items():
        spec = next((a for a in schema.attributes if a.name == name), None)
        if spec is None:
            return f"unknown attribute {_quoted(name)} (the model's: {', '.join(schema.names) or 'none'})"
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], int | float)
            and not isinstance(pair[1], bool)
        ):
            return f"attribute {name} is {_quoted(pair)}, not [value, confidence]"
        value, confidence = pair
        if value not in spec.values:
            return f"unknown value {_quoted(value)} for attribute {name} (values: {', '.join(spec.values)})"
        if not 0.0 <= confidence <= 1.0:  # NaN too
            return f"the confidence {confidence} of {name} is not between 0 and 1"
    return None
