"""Embedding on Ray (a local instance) into Parquet shards, then ingesting them: the gallery ranks
exactly as after a normal import of the same folder. Needs the optional ``cluster`` extra."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[cluster]' to test the cluster job")
pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install '.[cluster]'")

from core.cli.commands import main as cli_main  # noqa: E402
from core.cluster.cli import main as cluster_main  # noqa: E402
from core.model.untrained import init_checkpoint  # noqa: E402
from tests.conftest import draw_person  # noqa: E402
from tests.core.test_imaging import bad_files  # noqa: E402


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, untrained_model_dir):
    """A small gallery with bad files among the photos, embedded once on a local Ray into shards."""
    root = tmp_path_factory.mktemp("cluster")
    gallery = root / "gallery"
    (gallery / "sub").mkdir(parents=True)
    for i in range(10):
        draw_person(i).save(gallery / ("sub" if i % 3 == 0 else "") / f"person_{i:03d}.jpg", quality=90)
    reasons = bad_files(gallery)
    shards = root / "shards"
    code = cluster_main(["embed", str(gallery), "--out", str(shards), "--model", str(untrained_model_dir)])
    assert code == 0
    return gallery, shards, reasons


def cli(capsys, *argv):
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_embedded_shards_hold_every_file_with_its_embedding_or_its_reason(embedded, untrained_model_dir):
    import pyarrow.parquet as pq

    from core.gallery.shards import COLUMNS
    from core.model.inference import InferenceModel

    gallery, shards, reasons = embedded
    table = pq.read_table(shards)
    assert set(COLUMNS) <= set(table.column_names) and table.num_rows == 15
    rows = {r["path"]: r for r in table.to_pylist()}
    model = InferenceModel(untrained_model_dir, device="cpu")
    for name, reason in reasons.items():
        row = rows[str(gallery / name)]
        assert reason in row["error"] and row["embedding"] is None
    good = [r for r in rows.values() if r["error"] is None]
    assert len(good) == 10 and all(r["embedding_key"] == model.embedding_key for r in good)
    assert all(len(r["embedding"]) == model.embedding_dim and len(r["sha256"]) == 64 for r in good)
    assert all(json.loads(r["attributes"]) == {} for r in good)  # this model predicts no attributes


def test_ingested_shards_rank_like_a_normal_import_and_a_rerun_adds_nothing(
    embedded, tmp_path, capsys, untrained_model_dir
):
    gallery, shards, _ = embedded
    sketch = tmp_path / "sketch.png"
    draw_person(3, size=(120, 240)).convert("L").save(sketch)
    ingested = ["--data-dir", tmp_path / "ingested", "--model", untrained_model_dir]
    imported = ["--data-dir", tmp_path / "imported", "--model", untrained_model_dir]

    code, out, _ = cli(capsys, *ingested, "import-embeddings", shards, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["added"] == 10 and len(summary["failed"]) == 5
    assert cli(capsys, *imported, "import", gallery)[0] == 0

    def ranking(data):
        code, out, _ = cli(capsys, *data, "search", sketch, "--top", "10", "--json")
        assert code == 0
        return [(c["path"], c["score"]) for c in json.loads(out)[0]["candidates"]]

    from_shards, from_import = ranking(ingested), ranking(imported)
    assert [p for p, _ in from_shards] == [p for p, _ in from_import] and len(from_shards) == 10
    assert [s for _, s in from_shards] == pytest.approx([s for _, s in from_import], abs=1e-5)
    assert cli(capsys, *ingested, "verify")[0] == 0

    code, out, _ = cli(capsys, *ingested, "import-embeddings", shards, "--json")
    again = json.loads(out)
    assert code == 0 and again["added"] == 0 and again["unchanged"] == 10
    assert json.loads(cli(capsys, *ingested, "stats", "--json")[1])["photos"] == 10


def test_shards_of_another_model_are_refused_in_one_line(embedded, tmp_path, capsys):
    _, shards, _ = embedded
    other = tmp_path / "other-model"
    init_checkpoint(other, "efficientnet_lite0", None, 256, command="test fixture")
    data = ["--data-dir", tmp_path / "data", "--model", other]
    code, out, err = cli(capsys, *data, "import-embeddings", shards)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and ".parquet: embedded with model key" in err
    assert json.loads(cli(capsys, *data, "stats", "--json")[1])["photos"] == 0


def test_cluster_embed_refuses_a_missing_source_and_a_used_output_folder(embedded, tmp_path, capsys):
    _, shards, _ = embedded
    assert cluster_main(["embed", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    assert cluster_main(["embed", str(tmp_path), "--out", str(shards)]) == 2
    assert "not empty" in capsys.readouterr().err
