"""Casework costs: recording one search in a gallery of 100k photos, and exporting the PDF report
of a case of 500 searches, and the full audit verification of that gallery (every case, search,
result and review against its entry; the seals under a key).

    python -m benchmarks.casework_recording [--photos 100000] [--records 200] [--case-searches 500]
        [--queries same|distinct] [--keep DIR]

Recording is ``CaseDesk.record_search`` (``Workspace.desk``; the window's ``record_drawn_search``
reaches it after each shown search), with an already drawn query: the
query PNG and strokes, the gallery state (photo count, last import), the top-K candidates with
their sha256 and thumbnails (real JPEG thumbnails, as an import stores them), the audit entry, all
in one transaction. Targets: under 20 ms per search at 100k photos; a 500-search case exported
in under 30 s; `audit verify` of it in under 5 s.

The case's searches all use one drawn query (``--queries same``, as the earlier figures were
measured) or each its own (``distinct``: the report embeds every query again for its region maps,
so this is the dearer case). ``--keep DIR`` leaves the data folder and its audit key there, to time
the export again with another version of the program (benchmarks/report_export.py)."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.query_latency import populate
from core.casework.query import drawn_query
from core.casework.store import utcnow
from core.common.paths import default_model_dir
from core.model.loading import load_model
from core.workspace import Workspace


def thumbnails(count: int, rng: np.random.Generator) -> list[bytes]:
    """JPEG thumbnails of little drawn figures on noise, the size an import stores (192 px high)."""
    made = []
    for _ in range(count):
        image = Image.fromarray(rng.integers(0, 255, (192, 96, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        draw.rectangle([24, 40, 72, 110], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        made.append(buffer.getvalue())
    return made


def give_thumbnails(workspace: Workspace, pool: list[bytes]) -> None:
    with workspace.catalogue.write_transaction() as c:
        raw = c.connection.driver_connection
        ids = [r[0] for r in raw.execute("SELECT id FROM photos")]
        raw.executemany("UPDATE photos SET thumbnail = ? WHERE id = ?", [(pool[i % len(pool)], i) for i in ids])


def a_drawn_query(rng: np.random.Generator):
    pixels = np.full((512, 256), 255, np.uint8)
    strokes = []
    for _ in range(12):
        y, x = rng.integers(20, 490), rng.integers(20, 236)
        pixels[y : y + 3, x : x + 60] = 0
        strokes.append({"points": [[int(x), int(y)], [int(x) + 60, int(y)]], "width": 3})
    return drawn_query(pixels, json.dumps({"strokes": strokes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=200, help="searches recorded for the per-search timing")
    parser.add_argument("--case-searches", type=int, default=500)
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument("--queries", choices=("same", "distinct"), default="same", help="the case's queries")
    parser.add_argument("--keep", type=Path, help="copy the data folder and audit key here (a new folder)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = load_model(default_model_dir(), "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "audit.key"
        key.write_text("5" * 64)
        workspace = Workspace(Path(tmp) / "data", model=model, audit_key_file=key)
        start = time.perf_counter()
        populate(workspace, args.photos, rng)
        give_thumbnails(workspace, thumbnails(500, rng))
        build = time.perf_counter() - start
        queries = rng.standard_normal((args.records, model.embedding_dim), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        ranked = [workspace.search_embeddings(q[None], args.top)[0] for q in queries]
        query = a_drawn_query(rng)
        case = workspace.casework.new_case("BENCH-1", "benchmark", workspace.desk.operator)

        def record(candidates, case_id=None):
            return workspace.desk.record_search(
                query, candidates, where={}, min_confidence=0.5, top_k=args.top, started_at=utcnow(), case_id=case_id
            )

        record(ranked[0])  # warm
        timings = []
        for candidates in ranked:
            start = time.perf_counter()
            record(candidates)
            timings.append((time.perf_counter() - start) * 1000)
        revision = []
        first, _ = record(ranked[0])
        for candidates in ranked[:50]:
            start = time.perf_counter()
            workspace.desk.record_search(
                query, candidates, where={"gender": "female"}, min_confidence=0.5, top_k=args.top,
                started_at=utcnow(), revision_of=first,
            )  # fmt: skip
            revision.append((time.perf_counter() - start) * 1000)

        for i in range(args.case_searches):
            if args.queries == "distinct":
                query = a_drawn_query(rng)
            search_id, _ = record(ranked[i % len(ranked)], case.id)
            if i % 10 == 0:
                from core.casework.records import ReviewMark

                workspace.casework.review(search_id, 1, ReviewMark.EXCLUDED, workspace.desk.operator, "ruled out")
        start = time.perf_counter()
        check = workspace.casework.verify_audit()
        verify_s = time.perf_counter() - start
        assert check.ok, check.problem
        start = time.perf_counter()
        report = workspace.desk.export_case_report("BENCH-1", Path(tmp) / "case.pdf")
        export_s = time.perf_counter() - start
        size_mb = report.stat().st_size / 1e6
        entries = check.entries
        workspace.close()
        if args.keep:
            shutil.copytree(tmp, args.keep, ignore=shutil.ignore_patterns("case.pdf"))

    median = statistics.median(timings)
    print(
        f"gallery {args.photos} photos with JPEG thumbnails, top {args.top}, {args.queries} queries; "
        f"built in {build:.1f} s"
    )
    print(
        f"record a search      median {median:6.2f} ms   p95 {float(np.percentile(timings, 95)):6.2f} ms "
        f"({len(timings)} searches)"
    )
    print(f"record a revision    median {statistics.median(revision):6.2f} ms ({len(revision)} re-ranks)")
    print(f"audit verify         {verify_s:6.2f} s for {entries} entries, every casework row and seal")
    print(f"export a {args.case_searches}-search case   {export_s:6.2f} s ({size_mb:.1f} MB PDF, chain check included)")
    print(
        f"ratio: recording median/20 ms {median / 20:.2f}, export/30 s {export_s / 30:.2f}, "
        f"verify/5 s {verify_s / 5:.2f} (targets < 1); load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
