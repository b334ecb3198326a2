"""The catalogue at a million photos: what stats, verify, the folder panel, attribute filtering and
a search's candidate records cost, with the schema-3 indices and (dropped again) without them; the
attribute table's whole read against the one it replaced, and a workspace's first filtered search
after an import of 1,000 photos (the table updated for them alone).

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

from core.catalogue.catalogue import AttributeTable, Catalogue, NewPhoto
from core.common.paths import default_model_dir
from core.model.checkpoint import read_manifest
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


def previous_attribute_table(catalogue: Catalogue, schema_values) -> AttributeTable:
    """The whole read the incremental table replaced, kept here to measure the ratio in one run:
    precedence resolved by a GROUP BY in SQLite, five columns a row handed to Python. Before it
    went, every filter after an import (or sheet, prune, re-index) read the table this way."""
    names = tuple(schema_values)
    codes = [(name, value, j, code) for j, name in enumerate(names) for code, value in enumerate(schema_values[name])]
    priority = "WHEN 'model' THEN 0 WHEN 'imported' THEN 1 WHEN 'manual' THEN 2"
    with catalogue.engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        ids = np.sort(
            np.fromiter(
                (r[0] for r in cursor.execute("SELECT id FROM photos INDEXED BY ix_photos_missing_since")),
                dtype=np.int64,
            )
        )
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS previous_codes "
            "(name TEXT, value TEXT, col INTEGER, code INTEGER, PRIMARY KEY (name, value)) WITHOUT ROWID"
        )
        cursor.execute("DELETE FROM temp.previous_codes")
        cursor.executemany("INSERT INTO temp.previous_codes VALUES (?, ?, ?, ?)", codes)
        rows = cursor.execute(
            f"SELECT a.photo_id, c.col, c.code, a.confidence, MAX(CASE a.source {priority} END) "
            "FROM photo_attributes AS a CROSS JOIN temp.previous_codes AS c "
            "ON a.name = c.name AND a.value = c.value GROUP BY a.photo_id, a.name"
        ).fetchall()
        cursor.close()
    values = np.full((len(ids), len(names)), -1, dtype=np.int16)
    confidence = np.zeros((len(ids), len(names)), dtype=np.float32)
    if rows:
        data = np.asarray(rows, dtype=np.float64)
        row_index = np.searchsorted(ids, data[:, 0].astype(np.int64))
        columns = data[:, 1].astype(np.intp)
        values[row_index, columns] = data[:, 2].astype(np.int16)
        confidence[row_index, columns] = data[:, 3]
    return AttributeTable(ids=ids, names=names, values=values, confidence=confidence)


def timed(label: str, call, results: list[str]):
    start = time.perf_counter()
    value = call()
    seconds = time.perf_counter() - start
    results.append(f"  {label:58s} {seconds * 1000:10.1f} ms")
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
    schema_values = {a.name: a.values for a in schema.attributes}
    before = timed(
        "attribute table, previous whole read (before)",
        lambda: previous_attribute_table(catalogue, schema_values),
        results,
    )
    table = timed(
        "attribute table, whole read (first filter after opening)",
        lambda: catalogue.attribute_table(schema_values),
        results,
    )
    if not (np.array_equal(before.values, table.values) and np.array_equal(before.confidence, table.confidence)):
        raise SystemExit("the two reads of the attribute table differ")
    del before
    first, second = schema.attributes[0], schema.attributes[1]
    where = {first.name: first.values[0], second.name: second.values[0]}
    allowed = timed(f"filter {where} on the cached table", lambda: allowed_photo_ids(table, schema, where), results)
    wanted = allowed[:: max(1, len(allowed) // 100)][:100].tolist()
    timed("100 candidates' records (each search)", lambda: catalogue.photos(wanted), results)
    timed("one thumbnail", lambda: catalogue.thumbnail(wanted[0]), results)
    timed(
        "read every embedding in chunks (verify, index rebuild)",
        lambda: sum(len(i) for i, _ in catalogue.iter_embeddings(KEY, DIM)),
        results,
    )
    return results


def after_an_import(folder: Path, schema, count: int = 1000) -> list[str]:
    """A workspace over the catalogue (the bundled model's manifest; its network is not needed):
    the first filtered search reads the whole table, then ``count`` photos are committed as an import
    commits them (batches of 32, each with its embedding and predictions) and the next filtered
    search brings the table up to date for them alone."""
    from core.workspace import Workspace

    results: list[str] = []
    workspace = Workspace(folder)
    rng = np.random.default_rng(1)
    query = rng.standard_normal((1, workspace.embedding_dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    first, second = schema.attributes[0], schema.attributes[1]
    where = {first.name: first.values[0], second.name: second.values[0]}

    def search():
        return workspace.search_embeddings(query, top_k=100, where=where)

    timed("first filtered search after opening (whole table read)", search, results)
    vectors = rng.standard_normal((count, workspace.embedding_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    for batch in range(0, count, 32):
        photos = [
            NewPhoto(
                path=f"/gallery/new/{i:08d}.jpg",
                sha256=f"{i:063x}n",
                size_bytes=1,
                mtime_ns=1,
                width=128,
                height=256,
                source_folder="/gallery/new",
                thumbnail=b"",
                embedding=vectors[i],
                attributes={a.name: (a.values[int(rng.integers(len(a.values)))], 0.8) for a in schema.attributes},
            )
            for i in range(batch, min(batch + 32, count))
        ]
        ids = workspace.catalogue.add_photos(photos, workspace.embedding_key)
        workspace.indexes.add(np.asarray(ids, np.int64), vectors[batch : batch + len(ids)])
    results.append(
        f"  {f'(committing {count} photos in batches of 32)':58s} {(time.perf_counter() - start) * 1000:10.1f} ms"
    )
    timed(f"first filtered search after importing {count} photos", search, results)
    timed("the same search again", search, results)
    table = workspace.attribute_table()
    whole = workspace.catalogue.attribute_table({a.name: a.values for a in schema.attributes})
    if not (np.array_equal(table.ids, whole.ids) and np.array_equal(table.values, whole.values)):
        raise SystemExit("the updated attribute table differs from a whole read")
    workspace.close()
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
        print("a workspace over it, before and after an import:")
        print("\n".join(after_an_import(Path(tmp), schema)))
        with sqlite3.connect(catalogue.path) as db:
            for name in ("ix_photos_folder_missing", "ix_photos_missing_since", "ix_embeddings_model_photo"):
                db.execute(f"DROP INDEX {name}")
        print("without them (schema 2), same file, page cache warm from the run above:")
        print("\n".join(measure(catalogue, schema, indexed_only=True)))
        catalogue.close()
    print("the machine was shared with other work while measuring: times are upper bounds")


if __name__ == "__main__":
    main()
