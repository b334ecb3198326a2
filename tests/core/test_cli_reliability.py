"""The command line against a careless or hostile user (issue 25): stale results are marked, an
empty or mistyped gallery is said so, odd names print on one line, and every bad input is one
error line with exit 2, never a traceback."""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from core.cli.commands import main
from tests.conftest import draw_person
from tests.core.test_photo_audit import import_run


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
    lines = {line.split()[7]: line for line in out.splitlines()[1:]}  # rank N score S photo id ID PATH
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
    assert code == 0 and out.splitlines()[0] == f"{sketch}  (recorded as search 1)"  # the query, no candidates
    assert all(line.startswith("  warning: The query looks like a photo") for line in out.splitlines()[1:])
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
    lines = [line for line in out.splitlines() if not line.startswith("  warning: ")]  # a gallery photo searched
    assert code == 0 and len(lines) == 4  # the query and three candidates, one line each
    assert "caf\\xe9.jpg" in out and "two\\nlines.jpg" in out
    code, out, _ = cli(capsys, *data, "search", sketch, "--top", "3", "--json")
    paths = {os.fsencode(c["path"]) for c in json.loads(out)[0]["candidates"]}
    assert paths == {os.path.join(os.fsencode(folder), n) for n in names}


def audit_log(data: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(data / "catalogue.sqlite3") as db:
        return [(k, json.loads(p)) for k, p in db.execute("SELECT kind, payload_json FROM audit_log ORDER BY seq")]


def test_a_folder_name_that_is_not_utf8_is_logged_with_its_bytes_and_its_prune_too(
    tmp_path, capsys, untrained_model_dir
):
    root = os.path.join(os.fsencode(tmp_path), b"caf\xff")  # not UTF-8: Linux allows any byte but / and NUL
    photos = [os.path.join(root, b"sub", f"person_{seed}.jpg".encode()) for seed in range(3)]
    os.makedirs(os.path.join(root, b"sub"))
    for seed, photo in enumerate(photos):
        draw_person(seed).save(os.fsdecode(photo), format="JPEG")
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    code, out, err = cli(capsys, *data, "import", root)
    assert code == 0 and err == "" and out.startswith("added 3,")

    code, out, err = cli(capsys, *data, "search", photos[0], "--top", "1")  # a sketch in that folder
    assert code == 0 and err == "" and out.startswith(f"{tmp_path}/caf\\xff/sub/person_0.jpg  (recorded as search 1)")

    sheet = os.path.join(root, b"sheet\xff.csv")
    with open(sheet, "w") as file:
        file.write("filename,hair\nperson_0.jpg,long\n")
    assert cli(capsys, *data, "attributes", "import", sheet)[0] == 0

    shutil.rmtree(os.path.join(root, b"sub"))  # the photos are gone: the next import flags them, prune forgets them
    assert cli(capsys, *data, "import", root)[0] == 0
    code, out, err = cli(capsys, *data, "prune")
    assert (code, out, err) == (0, "pruned 3 photo(s) whose files are gone\n", "")

    entries = audit_log(tmp_path / "data")
    kinds = [kind for kind, _ in entries]
    assert kinds == ["model", "import batch", "import", "search", "attribute sheet", "import", "prune"]
    batch = entries.pop(1)[1]  # the committed batch, with the run's number, before the run's own entry
    assert (batch["import_id"], batch["added"], batch["ids"]) == (1, 3, [1, 3])
    assert entries[2][1]["query_name"] == f"{tmp_path}/caf\\xff/sub/person_0.jpg"  # the query's bytes are recorded
    del entries[2]
    run = import_run(tmp_path / "data", entries[1][1]["import_id"])  # the entry names the run's record
    assert run["added"] == 3 and [os.fsencode(r) for r in run["roots"]] == [root]  # the folder's exact bytes
    assert base64.b64decode(entries[2][1]["file_b64"]) == sheet and entries[2][1]["file"].endswith("sheet\\xff.csv")
    pruned = entries[4][1]["photos"]
    assert sorted(base64.b64decode(b64) for _, _, _, b64 in pruned) == photos
    assert all("caf\\xff/sub/person_" in text for _, _, text, _ in pruned)
    assert cli(capsys, *data, "audit", "verify")[0] == 0


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
    assert cli(capsys, *data, "verify")[0] == 1
    code, out, _ = cli(capsys, *data, "rebuild-index")
    assert code == 0 and "3 photo(s)" in out
    assert cli(capsys, *data, "verify")[0] == 0
    with Workspace(tmp_path / "data", untrained_model_dir) as workspace:
        _, stored = workspace.catalogue.embeddings(workspace.model.embedding_key, workspace.model.embedding_dim)
        assert abs(float(stored[1] @ original[1]) - 1) < 1e-4  # the same photo's embedding again
        assert abs(float(workspace.index.reconstruct(int(ids[1])) @ original[1]) - 1) < 1e-4

    damage_embedding(tmp_path / "data" / "catalogue.sqlite3", int(ids[2]), seed=1)
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1 and f"1 stored embedding(s) are damaged (not finite unit vectors), photo id(s) {ids[2]}" in out
    damage_embedding(tmp_path / "data" / "catalogue.sqlite3", int(ids[0]), seed=2)
    photos[2].unlink()  # nothing to embed it from: reported, and never indexed
    draw_person(555).save(photos[0], quality=90)  # another person's photo: never embedded in its place
    code, out, _ = cli(capsys, *data, "rebuild-index")
    assert code == 0 and "1 photo(s)" in out
    assert f"not embedded: {photos[2]}: stored embedding damaged, file unusable (no such file)" in out
    assert f"not embedded: {photos[0]}: stored embedding damaged, file unusable (the file changed since import)" in out
    code, out, _ = cli(capsys, *data, "verify")
    assert code == 1 and "2 photo(s) have no embedding" in out


def one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (code, err)
    assert "Traceback" not in err + out
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_bad_sheets_ids_and_manifests_are_one_line_errors(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=1)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"filename,gender\n{photos[0].name},male\nb\xe9b\xe9.jpg,female\n".encode("latin-1"))
    one_line_error(*cli(capsys, *data, "attributes", "import", latin1), "latin1.csv, line 3", "not UTF-8")
    huge = tmp_path / "huge.csv"
    huge.write_text(f"filename,gender\n{photos[0].name},{'x' * 131_073}\n")
    one_line_error(*cli(capsys, *data, "attributes", "import", huge), "huge.csv, line 2", "field larger")
    one_line_error(
        *cli(capsys, *data, "attributes", "set", "100000000000000000000000", "gender=male"),
        "no photo with id 100000000000000000000000",
    )
    for name, manifest, message in [
        ("list", lambda m: [m], "must be a JSON object"),
        ("parts", lambda m: {**m, "parts": 0}, "'parts' must be a positive whole number"),
        ("dim", lambda m: {**m, "embedding_dim": 0}, "'embedding_dim' must be a positive whole number"),
    ]:
        folder = tmp_path / name
        shutil.copytree(untrained_model_dir, folder)
        edited = manifest(json.loads((folder / "manifest.json").read_text()))
        (folder / "manifest.json").write_text(json.dumps(edited))
        code, out, err = cli(capsys, "--data-dir", tmp_path / "data", "--model", folder, "stats")
        one_line_error(code, out, err, str(folder / "manifest.json"), message)


def test_a_file_name_in_several_folders_is_reported_as_ambiguous(tmp_path, capsys, untrained_model_dir):
    for seed, folder in enumerate(["case1", "case2"]):
        (tmp_path / "gallery" / folder).mkdir(parents=True)
        draw_person(seed).save(tmp_path / "gallery" / folder / "suspect.jpg", quality=90)
    draw_person(9).save(tmp_path / "gallery" / "case1" / "witness.jpg", quality=90)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", tmp_path / "gallery")[0] == 0
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("filename,gender\nsuspect.jpg,male\nwitness.jpg,female\n")
    code, out, _ = cli(capsys, *data, "attributes", "import", sheet)
    assert code == 0 and "set 1 attribute value(s)" in out
    assert "not applied: 'suspect.jpg' matches photos in several folders" in out
    code, out, _ = cli(capsys, *data, "search", tmp_path / "gallery" / "case1" / "witness.jpg", "--json")
    genders = {c["path"]: c["attributes"].get("gender", {}).get("value") for c in json.loads(out)[0]["candidates"]}
    assert genders == {
        str(tmp_path / "gallery" / "case1" / "witness.jpg"): "female",
        str(tmp_path / "gallery" / "case1" / "suspect.jpg"): None,
        str(tmp_path / "gallery" / "case2" / "suspect.jpg"): None,
    }


def test_a_second_import_is_refused_while_one_runs(tmp_path, capsys, make_photos, untrained_model_dir):
    from filelock import FileLock

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    with FileLock(tmp_path / "data" / "import.lock"):  # what a running import holds
        one_line_error(*cli(capsys, *data, "import", photos[0].parent), "another import is running")
        one_line_error(*cli(capsys, *data, "rebuild-index"), "another import is running")
    assert cli(capsys, *data, "import", photos[0].parent)[0] == 0


def test_a_search_never_rewrites_the_index_file_of_a_running_import(tmp_path, capsys, make_photos, untrained_model_dir):
    from filelock import FileLock

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    (index_file,) = (tmp_path / "data" / "index").glob("*.faiss")
    before = index_file.read_bytes()
    more = make_photos(2, start=2)
    assert cli(capsys, *data, "import", more[0].parent)[0] == 0
    # as during an import: batches committed to the catalogue, the index file saved at the end
    index_file.write_bytes(before)
    with FileLock(tmp_path / "data" / "import.lock"):
        code, out, _ = cli(capsys, *data, "search", photos[0], "--top", "10", "--json")
        assert code == 0 and len(json.loads(out)[0]["candidates"]) == 4  # searched from the catalogue
        assert index_file.read_bytes() == before  # the import's file, left to the import


ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """The installed entry point in a child process; ``file_size_limit`` makes every file write past
    that size fail, as on a full disk."""

    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SKETCHSEARCH_DEVICE": "cpu"},
        preexec_fn=limit_writes if file_size_limit else None,
        timeout=300,
    )


def test_a_full_disk_is_one_line_and_the_import_resumes_once_space_is_freed(tmp_path, make_photos, untrained_model_dir):
    photos = make_photos(80)  # about 1.4 MB of catalogue: the limit is met part way
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    full = run_cli(*data, "import", photos[0].parent, file_size_limit=1_000_000)
    assert full.returncode == 2, full.stderr
    errors = [line for line in full.stderr.splitlines() if not line.startswith("WARNING")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "free some space" in errors[0], full.stderr
    assert "Traceback" not in full.stderr
    stats = run_cli(*data, "stats", "--json")
    assert stats.returncode == 0 and 0 < json.loads(stats.stdout)["photos"] < 80
    resumed = run_cli(*data, "import", photos[0].parent, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert run_cli(*data, "verify").returncode == 0
    assert json.loads(run_cli(*data, "stats", "--json").stdout)["photos"] == 80


def test_a_catalogue_damaged_mid_file_is_reported_by_verify(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=40)
    database = tmp_path / "data" / "catalogue.sqlite3"
    with sqlite3.connect(database) as db:  # everything into the main file, then damage its middle
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    pages = database.stat().st_size // page_size
    with open(database, "r+b") as handle:
        for page in range(pages // 3, pages // 3 + 4):
            handle.seek(page * page_size)
            handle.write(b"\xa5" * page_size)
    code, out, err = cli(capsys, *data, "verify")
    assert code == 1 and "Traceback" not in out + err
    (problem,) = out.splitlines()  # SQLite's own check found the damage, and what to do is said
    assert "damaged" in problem and "quick_check" in problem and "restore it from a backup" in problem
    for command in (["stats"], ["search", photos[0]], ["rebuild-index"]):
        code, out, err = cli(capsys, *data, *command)
        assert "Traceback" not in out + err
        if code != 0:  # the command read a damaged page: one line that says what to do
            one_line_error(code, out, err, str(database), "damaged", "run 'sketchsearch verify'")
