"""Ingesting embedding shards (``sketchsearch import-embeddings``) from shards this test writes with
the cluster job's own writer, for the bundled model: every row is checked before anything is
stored, a bad row refuses the ingest in one line naming its shard and row, and each committed batch
is in the audit log. Needs pyarrow (the optional ``cluster`` extra), not Ray."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install '.[cluster]'")
import pyarrow.parquet as pq  # noqa: E402

from core.cli.commands import main  # noqa: E402
from core.cluster.embed import shard_table  # noqa: E402
from core.common.imaging import make_thumbnail  # noqa: E402
from core.model.manifest import verified_manifest  # noqa: E402
from tests.conftest import draw_person  # noqa: E402
from tests.core.test_cli import count_photos, kill_9_once_committed  # noqa: E402
from tests.core.test_photo_audit import run_entries  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
THUMBNAIL = make_thumbnail(draw_person(0))


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model(model_dir):
    manifest = verified_manifest(model_dir)
    return model_dir, manifest.embedding_key, manifest.embedding_dim


def good_rows(count: int, key: str, dim: int, start: int = 0) -> tuple[list[dict], np.ndarray]:
    """Rows as the cluster job writes them: unit vectors, the model's attribute values, real sha256s."""
    vectors = np.random.default_rng(start).standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        {
            "sha256": hashlib.sha256(f"photo {i}".encode()).hexdigest(),
            "path": f"/gallery/person_{i:06d}.jpg",
            "source_folder": "/gallery",
            "size_bytes": 10_000 + i,
            "mtime_ns": 1_700_000_000_000_000_000 + i,
            "width": 96,
            "height": 192,
            "thumbnail": THUMBNAIL,
            "attributes": json.dumps({"gender": ["female", 0.93], "hat": ["no", 0.71]}),
            "embedding_key": key,
            "error": None,
        }
        for i in range(start, start + count)
    ]
    return rows, vectors


def write_shard(path: Path, rows: list[dict], vectors: np.ndarray, embedding=None) -> Path:
    """Written by the cluster job's writer; ``embedding``: another embedding column (other lengths)."""
    failed = [row["error"] is not None for row in rows]
    table = shard_table(rows, vectors, failed, vectors.shape[1])
    if embedding is not None:
        table = table.set_column(table.column_names.index("embedding"), "embedding", embedding)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def audit_entries(data: Path, kind: str) -> list[dict]:
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        rows = db.execute("SELECT payload_json FROM audit_log WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    return [json.loads(payload) for (payload,) in rows]


def _set(field, value):
    def change(rows, vectors):
        rows[1][field] = value

    return change


def _attributes(attributes):
    return _set("attributes", json.dumps(attributes))


def _scale(factor):
    def change(rows, vectors):
        vectors[1] *= factor

    return change


def _put(value):
    def change(rows, vectors):
        vectors[1, 5] = value

    return change


BAD_ROWS = {
    "a vector 100 times too long": (_scale(100), "not a unit vector (length 100"),
    "a vector slightly too long": (_scale(1.01), "not a unit vector (length 1.01"),
    "a NaN in the vector": (_put(np.nan), "NaN or infinite"),
    "an infinity in the vector": (_put(np.inf), "NaN or infinite"),
    "a zero vector": (_scale(0), "not a unit vector (length 0"),
    "a value outside the schema": (_attributes({"gender": ["robot", 0.9]}), "unknown value 'robot' for attribute"),
    "a confidence above 1": (_attributes({"gender": ["male", 7.5]}), "confidence 7.5 of gender is not between 0"),
    "a negative confidence": (_attributes({"gender": ["male", -3]}), "confidence -3 of gender is not between 0"),
    "a NaN confidence": (_attributes({"gender": ["male", float("nan")]}), "confidence nan of gender is not"),
    "an unknown attribute": (_attributes({"mood": ["happy", 0.9]}), "unknown attribute 'mood'"),
    "attributes that are not a mapping": (_set("attributes", "[1, 2]"), "attributes are not a JSON object"),
    "attributes that are not JSON": (_set("attributes", "{gender"), "attributes are not a JSON object"),
    "a value that is not [value, confidence]": (_attributes({"gender": "male"}), "not [value, confidence]"),
    "a short sha256": (_set("sha256", "abc123"), "sha256 'abc123' is not 64 lowercase hex digits"),
    "an upper-case sha256": (_set("sha256", "AB" * 32), "is not 64 lowercase hex digits"),
    "a null embedding key": (_set("embedding_key", None), "no embedding key"),
    "a negative size": (_set("size_bytes", -1), "size_bytes -1 is negative"),
    "a zero width": (_set("width", 0), "width 0 is not a positive image size"),
    "a thumbnail that is not a JPEG": (_set("thumbnail", b"GIF89a"), "thumbnail is not a JPEG"),
    "an empty path": (_set("path", ""), "no path"),
    **{
        f"a null {field}": (_set(field, None), f"no {field}")
        for field in ("sha256", "path", "source_folder", "size_bytes", "mtime_ns", "width", "height", "thumbnail")
    },
    "null attributes": (_set("attributes", None), "no attributes"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_a_bad_row_refuses_the_ingest_in_one_line_and_nothing_is_stored(kind, model, tmp_path, capsys):
    model_dir, key, dim = model
    change, reason = BAD_ROWS[kind]
    write_shard(tmp_path / "shards" / "a.parquet", *good_rows(3, key, dim))  # a good shard, read first
    rows, vectors = good_rows(3, key, dim, start=3)
    change(rows, vectors)
    bad = write_shard(tmp_path / "shards" / "b.parquet", rows, vectors)
    data = tmp_path / "data"

    code, out, err = cli(capsys, "--data-dir", data, "--model", model_dir, "import-embeddings", tmp_path / "shards")
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: {bad}: row 2: ") and reason in err, err
    assert err.rstrip().endswith("nothing was ingested")
    assert count_photos(data / "catalogue.sqlite3") == 0  # not even the good shard's photos
    assert audit_entries(data, "import embeddings batch") == []


@pytest.mark.parametrize(
    "vector, reason",
    [(lambda v: v[:100], "a 100-d embedding, the model's are {dim}-d"), (lambda v: None, "no embedding (and no error")],
    ids=["100-d", "none"],
)
def test_an_embedding_of_another_length_or_none_refuses_the_ingest(vector, reason, model, tmp_path, capsys):
    model_dir, key, dim = model
    rows, vectors = good_rows(3, key, dim)
    lists = [list(v) for v in vectors]
    lists[2] = vector(lists[2])  # as a plain list column: a fixed-size one cannot hold another length
    shard = write_shard(tmp_path / "shards" / "a.parquet", rows, vectors, pa.array(lists, pa.list_(pa.float32())))
    data = tmp_path / "data"
    code, out, err = cli(capsys, "--data-dir", data, "--model", model_dir, "import-embeddings", shard)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: {shard}: row 3: {reason.format(dim=dim)}")
    assert count_photos(data / "catalogue.sqlite3") == 0


def test_a_failed_file_needs_only_its_path_and_reason(model, tmp_path, capsys):
    """A row with an error (a file the job could not read) has empty fields: recorded, not refused."""
    model_dir, key, dim = model
    rows, vectors = good_rows(3, key, dim)
    rows[1] = {"path": "/gallery/broken.jpg", "source_folder": "/gallery", "embedding_key": key, "error": "truncated"}
    vectors[1] = 0
    shard = write_shard(tmp_path / "shards" / "a.parquet", rows, vectors)
    data = ["--data-dir", tmp_path / "data", "--model", model_dir]
    code, out, _ = cli(capsys, *data, "import-embeddings", shard, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["added"] == 2
    assert summary["failed"] == [{"path": "/gallery/broken.jpg", "reason": "truncated"}]
    assert cli(capsys, *data, "verify")[0] == 0


def test_each_committed_batch_is_in_the_audit_log_with_its_shard_and_rows(model, tmp_path, capsys):
    from core.gallery.shard_ingest import ingest_shards
    from core.workspace import Workspace

    model_dir, key, dim = model
    first = write_shard(tmp_path / "shards" / "a.parquet", *good_rows(5, key, dim))
    rows, vectors = good_rows(4, key, dim, start=5)
    rows[0]["error"], rows[0]["sha256"] = "unreadable", None  # row 1 of b: a failed file, no photo
    second = write_shard(tmp_path / "shards" / "b.parquet", rows, vectors)
    data = tmp_path / "data"
    with Workspace(data, model_dir) as workspace:
        summary = ingest_shards(workspace.gallery.target(), tmp_path / "shards", batch_size=2)
    assert summary.added == 8
    batches = audit_entries(data, "import embeddings batch")
    shards = [(b["shard"], b["rows"], b["added"]) for b in batches]
    assert shards == [
        (str(first), [1, 2], 2), (str(first), [3, 4], 2), (str(first), [5, 5], 1),  # a batch ends with its shard
        (str(second), [2, 3], 2), (str(second), [4, 4], 1),
    ]  # fmt: skip
    assert all(b["shard_b64"] and b["import_id"] == 1 for b in batches)

    code, out, _ = cli(capsys, "--data-dir", data, "--model", model_dir, "import-embeddings", tmp_path / "shards")
    assert code == 0 and out.startswith("added 0, unchanged 8")
    batches = audit_entries(data, "import embeddings batch")
    assert sum(b["added"] for b in batches) == count_photos(data / "catalogue.sqlite3") == 8  # the rerun adds none
    runs = run_entries(data, "import embeddings")  # the run's own entry (the first ran ingest_shards alone)
    assert [(r["id"], r["added"], r["unchanged"]) for _, r in runs] == [(2, 0, 8)]
    assert runs[0][1]["roots"] == [str(tmp_path / "shards")]


@pytest.mark.slow
def test_kill_9_during_an_ingest_leaves_an_audit_entry_for_every_committed_photo(model, tmp_path):
    model_dir, key, dim = model
    total = 0
    for number in range(6):
        rows, vectors = good_rows(2000, key, dim, start=number * 2000)
        write_shard(tmp_path / "shards" / f"part-{number}.parquet", rows, vectors)
        total += len(rows)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "core.cli", "--data-dir", str(data), "--model", str(model_dir)]
    ingest = command + ["import-embeddings", str(tmp_path / "shards")]
    process = subprocess.Popen(ingest, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    committed = kill_9_once_committed(process, data / "catalogue.sqlite3", 600)
    assert 0 < committed < total
    assert sum(b["added"] for b in audit_entries(data, "import embeddings batch")) == committed
    assert audit_entries(data, "import embeddings") == []  # the run never got to its end
    verify = subprocess.run(command + ["audit", "verify"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = subprocess.run(ingest + ["--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == total - committed
    assert sum(b["added"] for b in audit_entries(data, "import embeddings batch")) == total
    assert [run["added"] for _, run in run_entries(data, "import embeddings")] == [total - committed]
