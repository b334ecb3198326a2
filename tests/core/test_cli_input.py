"""The command line against input that would corrupt or obscure the record (the evidence-integrity
issue): bad settings, a huge --top, file names that are not UTF-8, case numbers with control
characters or look-alike letters, a closed pipe, a second import, and mistyped commands. Each is one
line (exit 2) or handled, and nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

from core.search import MAX_TOP_K
from tests.core.test_cli_reliability import ROOT, cli, imported, one_line_error, run_cli


def test_bad_environment_settings_are_one_line_errors(tmp_path, capsys, make_photos, model_dir, monkeypatch):
    photos, data = imported(tmp_path, capsys, make_photos, model_dir, count=1)  # the bundled model: ONNX Runtime
    bad = [
        ("SKETCHSEARCH_THREADS", "abc", "SKETCHSEARCH_THREADS='abc'", "a whole number"),
        ("SKETCHSEARCH_THREADS", "-2", "SKETCHSEARCH_THREADS='-2'", "a whole number"),
        ("SKETCHSEARCH_THREADS", "99999999999999999999", "SKETCHSEARCH_THREADS='99999999999999999999'", "1024"),
        ("SKETCHSEARCH_DEVICE", "gpu9", "SKETCHSEARCH_DEVICE='gpu9'", "auto, cpu, cuda"),
        ("SKETCHSEARCH_RUNTIME", "tensorrt", "SKETCHSEARCH_RUNTIME='tensorrt'", "auto, onnxruntime, torch"),
    ]
    for name, value, *fragments in bad:
        with monkeypatch.context() as env:
            env.setenv(name, value)
            for command in (["stats"], ["search", photos[0]], ["case", "list"]):
                one_line_error(*cli(capsys, *data, *command), *fragments)
    window = subprocess.run(  # the window (its self-test here) refuses it too, before Qt loads
        [sys.executable, "-m", "app.main", "--self-test"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SKETCHSEARCH_DEVICE": "gpu9", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert (window.returncode, window.stdout) == (2, "")
    assert window.stderr == "error: SKETCHSEARCH_DEVICE='gpu9': not one of auto, cpu, cuda (or leave it unset)\n"
    monkeypatch.setenv("SKETCHSEARCH_DEVICE", " CPU ")
    monkeypatch.setenv("SKETCHSEARCH_THREADS", "1")
    code, out, _ = cli(capsys, *data, "stats")
    assert code == 0 and "device cpu" in out
    assert cli(capsys, *data, "search", photos[0])[0] == 0


def test_top_is_capped_with_a_warning_and_must_be_positive(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=3)
    code, out, err = cli(capsys, *data, "search", photos[0], "--top", "99999999999999999999", "--json")
    assert code == 0 and len(json.loads(out)[0]["candidates"]) == 3
    assert err == f"warning: --top 99999999999999999999: at most {MAX_TOP_K} candidates per sketch are kept\n"
    assert cli(capsys, *data, "audit", "export", tmp_path / "log.json")[0] == 0
    entries = json.loads((tmp_path / "log.json").read_text())["entries"]
    assert [json.loads(e["payload_json"])["top_k"] for e in entries if e["kind"] == "search"] == [
        MAX_TOP_K
    ]  # what ran is recorded
    for top in ("0", "-5"):
        one_line_error(*cli(capsys, *data, "search", photos[0], "--top", top), "--top must be at least 1")


def test_a_sketch_whose_name_is_not_utf8_is_searched_and_recorded(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    sketch = os.path.join(os.fsencode(tmp_path), b"sk\xff.jpg")
    shutil.copyfile(photos[0], sketch)
    assert cli(capsys, *data, "case", "new", "C1")[0] == 0
    code, out, err = cli(capsys, *data, "search", sketch, "--case", "C1")
    assert code == 0 and "Traceback" not in err
    assert out.splitlines()[0] == f"{tmp_path}/sk\\xff.jpg  (recorded as search 1 in case C1)"
    code, out, _ = cli(capsys, *data, "case", "show", "C1", "--json")
    (search,) = json.loads(out)["searches"]
    assert search["query"] == f"{tmp_path}/sk\\xff.jpg" and len(search["candidates"]) == 2
    assert cli(capsys, *data, "case", "replay", "1")[0] == 0  # replayed from the bytes recorded


def test_control_characters_in_case_numbers_and_titles_are_refused(tmp_path, capsys, make_photos, untrained_model_dir):
    _, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=1)
    refused = [
        (["E\x1b[31mVIL"], "case number 'E\\x1b[31mVIL'", "control character U+001B"),
        (["C\u202e1"], "case number 'C\\u202e1'", "control character U+202E"),
        (["C1", "--title", "t\x1b]0;pwned\x07"], "case title 't\\x1b]0;pwned\\x07'", "control character U+001B"),
        (["C1", "--notes", "line one\nline two\x9b2J"], "case notes", "control character U+009B"),
    ]
    for argv, *fragments in refused:
        one_line_error(*cli(capsys, *data, "case", "new", *argv), *fragments)
    code, out, _ = cli(capsys, *data, "case", "list", "--json")
    assert code == 0 and json.loads(out) == []  # nothing was created
    code, out, _ = cli(capsys, *data, "case", "new", "C1", "--notes", "line one\nline two")
    assert code == 0
    code, out, _ = cli(capsys, *data, "case", "show", "C1")
    assert "  notes: line one\\nline two" in out.splitlines()  # one line


def test_a_case_number_is_one_case_however_it_is_typed(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=1)
    code, out, _ = cli(capsys, *data, "case", "new", " C1 ", "--title", " Harbour ")
    assert code == 0 and out.startswith("case C1 opened by ")
    for typed in ("C1", " C1", "C1\u00a0", "\uff23\uff11"):  # no-break space, full-width letters
        code, out, err = cli(capsys, *data, "case", "show", typed)
        assert code == 0 and out.startswith("case C1: Harbour ("), (typed, err)
    code, out, _ = cli(capsys, *data, "search", photos[0], "--case", " \uff23\uff11 ")
    assert code == 0 and out.splitlines()[0].endswith("(recorded as search 1 in case C1)")
    one_line_error(*cli(capsys, *data, "case", "new", "\uff23\uff11"), "case C1 already exists")
    # Cyrillic С looks like Latin C: a second case that reads the same is refused
    one_line_error(*cli(capsys, *data, "case", "new", "\u04211"), "case number '\u04211'", "looks like case 'C1'")
    code, out, err = cli(capsys, *data, "case", "new", "K\u0430se-7")  # Cyrillic а among Latin letters
    assert code == 0 and err == "warning: case number 'K\u0430se-7' mixes Latin and Cyrillic letters\n"
    code, out, _ = cli(capsys, *data, "case", "list", "--json")
    assert [(c["number"], c["title"], c["searches"]) for c in json.loads(out)] == [
        ("C1", "Harbour", 1),
        ("K\u0430se-7", "", 0),
    ]


def test_stored_control_characters_print_escaped(tmp_path, capsys, make_photos, untrained_model_dir):
    """A catalogue written before numbers and titles were checked may hold terminal sequences."""
    _, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=1)
    number, title = "OLD\x1b[2J", "t\x1b]0;pwned\x07\x9b31m"
    with sqlite3.connect(tmp_path / "data" / "catalogue.sqlite3") as db:
        db.execute(
            "INSERT INTO cases (number, title, operator, notes, opened_at) VALUES (?, ?, 'ana\x1b[0m', 'n\x07', "
            "'2026-01-01 00:00:00')",
            (number, title),
        )
    for argv in (["case", "list"], ["case", "show", number], ["case", "list", "--json"], ["case", "show", number]):
        code, out, err = cli(capsys, *data, *argv)
        assert code == 0, err
        assert not any(ch in out for ch in "\x1b\x07\x9b"), out
    code, out, _ = cli(capsys, *data, "case", "list")
    assert out == "OLD\\x1b[2J  t\\x1b]0;pwned\\x07\\x9b31m  (ana\\x1b[0m, 0 search(es), open)\n"
    code, out, _ = cli(capsys, *data, "case", "list", "--json")
    assert json.loads(out)[0]["title"] == title  # JSON escapes, and reads back the same
    code, out, _ = cli(capsys, *data, "case", "show", number)
    assert out.splitlines() == ["case OLD\\x1b[2J: t\\x1b]0;pwned\\x07\\x9b31m (ana\\x1b[0m, open)", "  notes: n\\x07"]


def test_an_import_while_another_runs_says_so_and_leaves_it_running(tmp_path, capsys, make_photos, untrained_model_dir):
    from filelock import FileLock

    from core.catalogue.catalogue import Catalogue

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    database = tmp_path / "data" / "catalogue.sqlite3"
    with FileLock(tmp_path / "data" / "import.lock"):  # as a running import holds it, with its run 'running'
        catalogue = Catalogue(tmp_path / "data")
        running = catalogue.start_import([photos[0].parent])
        catalogue.close()
        second = run_cli(*data, "import", photos[0].parent)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert "another import is running" in second.stderr and "interrupted" not in second.stderr
        stats = run_cli(*data, "stats")
        assert stats.returncode == 0 and stats.stderr == ""
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT status FROM import_runs WHERE id = ?", (running,)).fetchone() == ("running",)
    stats = run_cli(*data, "stats")  # the lock is free: that run's process is gone, so it was interrupted
    assert "1 import(s) did not finish (interrupted)" in stats.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT status FROM import_runs WHERE id = ?", (running,)).fetchone() == ("interrupted",)


def test_changing_a_gallery_a_window_holds_says_so_in_one_line(tmp_path, capsys, make_photos, untrained_model_dir):
    from filelock import FileLock

    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=2)
    more = make_photos(1, start=50)
    with FileLock(tmp_path / "data" / "window.lock"):  # what an open window holds
        done = run_cli(*data, "import", more[0])
        assert done.returncode == 0 and done.stdout.startswith("added 1,")
        assert done.stderr == (
            f"warning: {tmp_path / 'data'}: a SketchSearch window has this gallery open; "
            "it sees these changes once it opens the gallery again\n"
        )
        assert run_cli(*data, "stats").stderr == ""  # reading it changes nothing: no warning
    assert run_cli(*data, "import", more[0]).stderr == ""


def test_a_closed_pipe_ends_the_output_quietly(tmp_path, capsys, make_photos, untrained_model_dir):
    photos, data = imported(tmp_path, capsys, make_photos, untrained_model_dir, count=3)
    for number in range(3):
        assert cli(capsys, *data, "case", "new", f"C-{number}")[0] == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SKETCHSEARCH_DEVICE": "cpu"}
    for argv in (["case", "list"], ["search", photos[0], "--json"], ["stats"]):
        child = subprocess.Popen(
            [sys.executable, "-m", "app.main", *map(str, data), *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        child.stdout.close()  # as `| head -0` does before anything is written
        err = child.stderr.read().decode()
        assert child.wait(timeout=300) in (0, 141) and err == "", (argv, child.returncode, err)


def test_a_catalogue_that_is_not_a_database_is_one_error_line(tmp_path, capsys, untrained_model_dir):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    catalogue = folder / "catalogue.sqlite3"
    catalogue.write_bytes(b"SQLite format 3\0" + bytes(8000))
    catalogue.chmod(0o600)
    code, out, err = cli(capsys, "--data-dir", folder, "--model", untrained_model_dir, "stats")
    one_line_error(code, out, err, str(catalogue), "file is not a database")
    assert "sqlalche.me" not in err


def test_a_mistyped_command_or_option_suggests_the_nearest(tmp_path):
    mistyped = [
        (["reveiw", "1", "1", "possible"], "error: sketchsearch: 'reveiw' is not a command; did you mean 'review'?"),
        (
            ["search", "S.png", "--tpo", "5"],
            "error: sketchsearch search: '--tpo' is not an option; did you mean '--top'?",
        ),
        (["case", "shwo", "C1"], "error: sketchsearch case: 'shwo' is not an action; did you mean 'show'?"),
        (
            ["review", "1", "1", "posible"],
            "error: sketchsearch review: mark 'posible' is not one of possible, excluded, clear; did you mean "
            "'possible'?",
        ),
        (  # a mistyped option before the command is named, not its value taken for the command
            ["--dat-dir", tmp_path, "stats"],
            "error: sketchsearch: '--dat-dir' is not an option; did you mean '--data-dir'?",
        ),
        (["--modle=m", "stats"], "error: sketchsearch: '--modle' is not an option; did you mean '--model'?"),
        (
            ["stats", "--data-dir", tmp_path],
            "error: sketchsearch stats: '--data-dir' is an option of sketchsearch itself: give it before the command",
        ),
    ]
    for argv, message in mistyped:
        result = run_cli(*argv)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n"), result.stderr
