"""The command line against a careless or hostile user (issue 25): stale results are marked, an
empty or mistyped gallery is said so, odd names print on one line, and every bad input is one
error line with exit 2, never a traceback."""

from __future__ import annotations

import json
import os

from core.cli import main
from tests.conftest import draw_person


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def imported(tmp_path, capsys, make_photos, model_dir, count=4):
    photos = make_photos(count)
    data = ["--data-dir", tmp_path / "data", "--model", model_dir]
    code, _, _ = cli(capsys, *data, "import", photos[0].parent)
    assert code == 0
    return photos, data


def test_results_say_when_a_file_is_missing_or_changed_since_import(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir)
    photos[0].unlink()
    draw_person(777).save(photos[1], quality=90)  # another person's photo under the same name
    os.utime(photos[2], ns=(1, 1))  # touched only: same content, still the photo
    code, out, _ = cli(capsys, *data, "search", photos[3], "--top", "4", "--json")
    assert code == 0
    states = {c["path"]: c["file"] for c in json.loads(out)[0]["candidates"]}
    assert states == {str(photos[0]): "missing", str(photos[1]): "changed", str(photos[2]): "ok", str(photos[3]): "ok"}

    code, out, _ = cli(capsys, *data, "search", photos[3], "--top", "4")
    lines = {line.split()[3]: line for line in out.splitlines()[1:]}
    assert lines[str(photos[0])].endswith("[file missing since import]")
    assert lines[str(photos[1])].endswith("[file changed since import]")
    assert "[" not in lines[str(photos[2])] and "[" not in lines[str(photos[3])]

    code, out, _ = cli(capsys, *data, "verify", "--files")
    assert code == 1
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2
    assert any("missing" in p and str(photos[0]) in p for p in problems)
    assert any("changed" in p and str(photos[1]) in p for p in problems)


def test_a_mistyped_data_folder_is_an_error_and_is_not_created(tmp_path, capsys, make_photos, untrained_model_dir):
    sketch = make_photos(1)[0]
    for command in (["search", sketch], ["stats"], ["verify"], ["rebuild-index"], ["prune"]):
        code, out, err = cli(capsys, "--data-dir", tmp_path / "typo", "--model", untrained_model_dir, *command)
        assert (code, out) == (2, "") and err.count("\n") == 1
        assert "no such data folder" in err and str(tmp_path / "typo") in err
    assert not (tmp_path / "typo").exists()


def test_searching_an_empty_gallery_warns(tmp_path, capsys, make_photos, untrained_model_dir, model_dir):
    sketch = make_photos(1)[0]
    (tmp_path / "empty").mkdir()
    code, out, err = cli(capsys, "--data-dir", tmp_path / "empty", "--model", untrained_model_dir, "search", sketch)
    assert code == 0 and out.strip() == str(sketch)
    assert err.startswith("warning:") and "no photos" in err and err.count("\n") == 1

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    code, out, err = cli(capsys, "--data-dir", tmp_path / "data", "--model", model_dir, "search", sketch)
    assert code == 0 and "none of the gallery's 2 photo(s) is indexed" in err and "rebuild-index" in err


def test_odd_file_names_print_on_one_line_and_round_trip_in_json(tmp_path, capsys, untrained_model_dir):
    folder = tmp_path / "gallery"
    folder.mkdir()
    names = [b"caf\xe9.jpg", b"two\nlines.jpg", b"plain.jpg"]
    for seed, name in enumerate(names):
        draw_person(seed).save(os.fsdecode(os.path.join(os.fsencode(folder), name)), format="JPEG")
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", folder)[0] == 0
    sketch = os.path.join(os.fsencode(folder), b"plain.jpg")
    code, out, _ = cli(capsys, *data, "search", sketch, "--top", "3")
    assert code == 0 and len(out.splitlines()) == 4  # the query and three candidates, one line each
    assert "caf\\xe9.jpg" in out and "two\\nlines.jpg" in out
    code, out, _ = cli(capsys, *data, "search", sketch, "--top", "3", "--json")
    paths = {os.fsencode(c["path"]) for c in json.loads(out)[0]["candidates"]}
    assert paths == {os.path.join(os.fsencode(folder), n) for n in names}


def test_search_input_that_would_silently_mean_something_else_is_refused(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=1)
    cases = [
        (["--where", "gender=male", "--where", "gender=female"], "--where gender given twice"),
        (["--min-confidence", "1.5"], "between 0 and 1"),
        (["--min-confidence", "-0.1"], "between 0 and 1"),
        (["--min-confidence", "nan"], "between 0 and 1"),
    ]
    for extra, message in cases:
        code, out, err = cli(capsys, *data, "search", photos[0], *extra)
        assert (code, out) == (2, "") and err.startswith("error: ") and message in err and err.count("\n") == 1
    code, _, _ = cli(capsys, *data, "search", photos[0], "--where", "gender=male", "--where", "gender=male")
    assert code == 0  # the same filter twice means the same thing


def damage_embedding(database, photo_id: int, seed: int = 0) -> None:
    """Overwrite 400 bytes inside one stored embedding, as a bad sector or a stray write would."""
    import sqlite3

    import numpy as np

    with sqlite3.connect(database) as db:
        (vector,) = db.execute("SELECT vector FROM embeddings WHERE photo_id = ?", (photo_id,)).fetchone()
        noise = np.random.default_rng(seed).integers(0, 256, 400, dtype=np.uint8).tobytes()
        damaged = vector[:800] + noise + vector[1200:]
        db.execute("UPDATE embeddings SET vector = ? WHERE photo_id = ?", (damaged, photo_id))


def test_rebuild_index_embeds_a_damaged_embedding_again_instead_of_indexing_it(
    tmp_path, capsys, make_photos, untrained_model_dir
):
    from core.workspace import Workspace

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=3)
    with Workspace(tmp_path / "data", untrained_model_dir) as workspace:
        ids, original = workspace.catalogue.embeddings(workspace.model.embedding_key, workspace.model.embedding_dim)
    damage_embedding(tmp_path / "data" / "catalogue.sqlite3", int(ids[1]))
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1 and "damaged" in out
    code, out, _ = cli(capsys, *data, "rebuild-index")
    assert code == 0 and "3 photo(s)" in out
    assert cli(capsys, *data, "verify")[0] == 0
    with Workspace(tmp_path / "data", untrained_model_dir) as workspace:
        _, stored = workspace.catalogue.embeddings(workspace.model.embedding_key, workspace.model.embedding_dim)
        assert abs(float(stored[1] @ original[1]) - 1) < 1e-4  # the same photo's embedding again
        assert abs(float(workspace.index.reconstruct(int(ids[1])) @ original[1]) - 1) < 1e-4

    damage_embedding(tmp_path / "data" / "catalogue.sqlite3", int(ids[2]), seed=1)
    photos[2].unlink()  # nothing to embed it from: reported, and never indexed
    code, out, _ = cli(capsys, *data, "rebuild-index")
    assert code == 0 and "2 photo(s)" in out and f"not embedded: {photos[2]}" in out and "damaged" in out
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1 and "1 photo(s) have no embedding" in out
