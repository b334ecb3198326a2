"""Cluster embedding on one machine against the in-process import, and the ingest of shards.

    python -m benchmarks.cluster_throughput [--photos 400] [--ingest-rows 50000]

1. The same generated folder is imported in-process (``Workspace.import_paths``) and embedded by
   ``sketchsearch-cluster embed`` on a local Ray instance (one model replica using every core):
   photos/s of each, the Ray job's fixed cost (a one-photo job), and the ratio (target >= 0.8).
2. Ingest: the shards' rows are replicated (new sha256 and path per copy) into ``--ingest-rows``
   rows and ingested with ``Workspace.gallery.import_embeddings``; rows/s and the time a million would take
   at that rate (extrapolated, said so; target < 10 minutes).

Needs the ``cluster`` extra. The machine was shared with other work while measuring."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.import_throughput import make_gallery
from core.cluster.embed import embed_to_shards
from core.common.paths import default_model_dir
from core.model.loading import load_model
from core.workspace import Workspace


def replicate_shards(source: Path, target: Path, rows: int, per_file: int = 10_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    table = table.filter(pa.compute.is_null(table.column("error")))
    target.mkdir()
    for start in range(0, rows, per_file):
        count = min(per_file, rows - start)
        picked = table.take(np.arange(start, start + count) % table.num_rows)
        numbers = range(start, start + count)
        picked = picked.set_column(0, "sha256", pa.array([f"{i:064x}" for i in numbers]))
        picked = picked.set_column(1, "path", pa.array([f"/replica/{i:08d}.jpg" for i in numbers]))
        pq.write_table(picked, target / f"replica-{start // per_file:05d}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--ingest-rows", type=int, default=50_000)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_gallery(tmp / "gallery", args.photos, size)
        model = load_model(default_model_dir(), "cpu")
        workspace = Workspace(tmp / "imported", model=model)
        start = time.perf_counter()
        summary = workspace.import_paths([tmp / "gallery"])
        in_process = summary.added / (time.perf_counter() - start)
        workspace.close()

        make_gallery(tmp / "one", 1, size)
        fixed = embed_to_shards([tmp / "one"], tmp / "one-shards", device="cpu").seconds
        job = embed_to_shards([tmp / "gallery"], tmp / "shards", device="cpu")
        on_ray = job.embedded / job.seconds
        steady = job.embedded / max(job.seconds - fixed, 1e-9)

        replicate_shards(tmp / "shards", tmp / "replica", args.ingest_rows)
        workspace = Workspace(tmp / "ingested", model=model)
        start = time.perf_counter()
        ingested = workspace.gallery.import_embeddings(tmp / "replica")
        ingest_seconds = time.perf_counter() - start
        workspace.close()

    rate = ingested.added / ingest_seconds
    print(f"photos            {args.photos} x {size[0]}x{size[1]} JPEG, CPU, bundled model")
    print(f"in-process import {in_process:8.1f} photos/s")
    print(f"cluster embed     {on_ray:8.1f} photos/s on a local Ray (job {job.seconds:.1f} s, {job.shards} shard(s))")
    print(f"  fixed cost      {fixed:8.1f} s (a one-photo job: Ray start, model load, shutdown)")
    print(f"  without it      {steady:8.1f} photos/s")
    print(f"ratio             {on_ray / in_process:8.2f}   whole job / in-process (target >= 0.80)")
    print(f"ratio             {steady / in_process:8.2f}   without the fixed cost")
    print(f"ingest            {ingested.added} rows in {ingest_seconds:.1f} s: {rate:.0f} rows/s")
    print(f"  1M rows         {1_000_000 / rate / 60:8.1f} min, extrapolated from that rate (target < 10)")
    print("the machine was shared with other work while measuring")


if __name__ == "__main__":
    main()
