"""The catalogue at a million photos: what stats, verify, the folder panel, attribute filtering and
a search's candidate records cost, with the schema-3 indices and (dropped again) without them.

    python -m benchmarks.catalogue_scale [--photos 1000000] [--thumbnail-bytes 4000]

The rows are written straight into a fresh catalogue file (SQLite executemany, the ORM would take
an hour): 896-d float32 embeddings, a thumbnail blob of realistic size, a model prediction for each
of the bundled model's attributes, 100 folders, one photo in a thousand flagged missing. The
machine was shared with other work while measuring: times are upper bounds."""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from core.catalogue.catalogue import Catalogue
from core.model.checkpoint import read_manifest
from core.paths import default_model_dir
from core.search import allowed_photo_ids

KEY = "ab" * 32
DIM = 896


def fill(
    catalogue: Catalogue, count: int, thumbnail_bytes: int, schema, chunk: int = 20_000, key: str = KEY, dim: int = DIM
) -> None:
    """``count`` photos under the model ``key`` (registered here); unit vectors, as a model stores them."""
    catalogue.register_model(key, "synthetic", dim, {})
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(thumbnail_bytes) for _ in range(16)]
    vectors = rng.standard_normal((chunk, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime(2026, 1, 1).isoformat(sep=" ")
    db = sqlite3.connect(catalogue.path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    for start in range(0, count, chunk):
        ids = range(start + 1, min(start + chunk, count) + 1)
        with db:
            db.executemany(
                "INSERT INTO photos (id, path, sha256, size_bytes, mtime_ns, width, height, imported_at, "
                "source_folder, thumbnail, missing_since) VALUES (?, ?, ?, 1, 1, 128, 256, ?, ?, ?, ?)",
                (
                    (
                        i,
                        f"/gallery/f{i % 100:03d}/{i:08d}.jpg",
                        f"{i:064x}",
                        now,
                        f"/gallery/f{i % 100:03d}",
                        blobs[i % 16],
                        now if i % 1000 == 0 else None,
                    )
                    for i in ids
                ),
            )
            db.executemany(
                "INSERT INTO embeddings (photo_id, model_sha256, vector) VALUES (?, ?, ?)",
                ((i, key, vectors[i % chunk].tobytes()) for i in ids),
            )
            db.executemany(
                "INSERT INTO photo_attributes (photo_id, name, source, value, confidence) VALUES (?, ?, 'model', ?, ?)",
                (
                    (i, a.name, a.values[(i * (j + 3)) % len(a.values)], 0.5 + (i % 50) / 100)
                    for i in ids
                    for j, a in enumerate(schema.attributes)
                ),
            )
    db.close()


def timed(label: str, call, results: list[str]):
    start = time.perf_counter()
    value = call()
    seconds = time.perf_counter() - start
    results.append(f"  {label:52s} {seconds * 1000:10.1f} ms")
    return value


def measure(catalogue: Catalogue, schema, indexed_only: bool = False) -> list[str]:
    """Time each catalogue read; ``indexed_only``: just those the schema-3 indices serve (the
    attribute table needs one of them, so it is left out once they are dropped)."""
    results: list[str] = []
    timed("count photos (stats)", catalogue.count_photos, results)
    timed("count missing (stats)", catalogue.count_missing, results)
    timed("last import's failures (stats)", catalogue.last_import_failures, results)
    timed("folder summary (folder panel)", catalogue.folders, results)
    timed("embedded ids of the model (open, verify)", lambda: catalogue.embedded_ids(KEY), results)
    timed("photos without an embedding (model change)", lambda: catalogue.count_without_embedding(KEY), results)
    if indexed_only:
        return results
    table = timed(
        "attribute table (first filter after an import)",
        lambda: catalogue.attribute_table({a.name: a.values for a in schema.attributes}),
        results,
    )
    first, second = schema.attributes[0], schema.attributes[1]
    where = {first.name: first.values[0], second.name: second.values[0]}
    allowed = timed(f"filter {where} on the cached table", lambda: allowed_photo_ids(table, schema, where), results)
    wanted = allowed[:: max(1, len(allowed) // 100)][:100].tolist()
    timed("100 candidates' records (each search)", lambda: catalogue.photos(wanted), results)
    timed("one thumbnail", lambda: catalogue.thumbnail(wanted[0]), results)
    timed(
        "read every embedding in chunks (verify)",
        lambda: sum(len(i) for i, _ in catalogue.iter_embeddings(KEY, DIM)),
        results,
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1_000_000)
    parser.add_argument("--thumbnail-bytes", type=int, default=4000)
    parser.add_argument(
        "--folder", type=Path, default=None, help="where the catalogue is written (default: a temp folder)"
    )
    args = parser.parse_args()
    schema = read_manifest(default_model_dir()).attribute_schema
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        catalogue = Catalogue(Path(tmp))
        start = time.perf_counter()
        fill(catalogue, args.photos, args.thumbnail_bytes, schema)
        size = catalogue.path.stat().st_size / 2**30
        print(
            f"catalogue   {args.photos} photos, {len(schema.attributes)} predicted attributes each, "
            f"{args.thumbnail_bytes} B thumbnails: written in {time.perf_counter() - start:.0f} s, {size:.1f} GB"
        )
        print("with the schema-3 indices (as shipped):")
        print("\n".join(measure(catalogue, schema)))
        with sqlite3.connect(catalogue.path) as db:
            for name in ("ix_photos_folder_missing", "ix_photos_missing_since", "ix_embeddings_model_photo"):
                db.execute(f"DROP INDEX {name}")
        print("without them (schema 2), same file, page cache warm from the run above:")
        print("\n".join(measure(catalogue, schema, indexed_only=True)))
        catalogue.close()
    print("the machine was shared with other work while measuring: times are upper bounds")


if __name__ == "__main__":
    main()
