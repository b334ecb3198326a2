"""The audit log and casework files from the command line: nothing written may replace the
catalogue, reports and exports are whole and private, the exported log checks with the standard
library alone, and a rewrite of the file is caught against a printed head and an audit key."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.core.test_audit_tamper import edit_first_review_note, rewrite_chain_from, tamper
from tests.core.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tools" / "check_audit_export.py"


@pytest.fixture
def case(tmp_path, make_photos, untrained_model_dir, capsys):
    """A gallery with case C-1: one recorded search and two reviews."""
    photos = make_photos(6)
    data = ["--data-dir", tmp_path / "data", "--model", untrained_model_dir]
    assert cli(capsys, *data, "import", photos[0].parent)[0] == 0
    assert cli(capsys, *data, "case", "new", "C-1", "--title", "robbery")[0] == 0
    code, out, _ = cli(capsys, *data, "search", photos[2], "--case", "C-1", "--top", "4", "--json")
    assert code == 0 and json.loads(out)[0]["search_id"] == 1
    assert cli(capsys, *data, "review", 1, 1, "possible", "--note", "tattoo")[0] == 0
    assert cli(capsys, *data, "review", 1, 2, "excluded")[0] == 0
    return data, tmp_path / "data", photos


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def printed_head(out: str) -> str:
    return out.split("head ")[1].split()[0]


def check_export(export: Path, *options) -> subprocess.CompletedProcess:
    """The checker as a third party runs it: isolated (-I) and without site-packages (-S), so it
    can use nothing but the standard library."""
    return subprocess.run(
        [sys.executable, "-I", "-S", CHECKER, export, *map(str, options)], capture_output=True, text=True
    )


@pytest.mark.parametrize("command", [["case", "report", "C-1", "--pdf"], ["audit", "export"]])
def test_nothing_is_written_inside_the_data_folder(case, capsys, command):
    data, folder, _ = case
    catalogue = folder / "catalogue.sqlite3"
    before = sha256(catalogue)
    for target in (catalogue, folder / "index" / "new.pdf", folder / "report.pdf"):
        code, _, err = cli(capsys, *data, *command, target)
        assert code == 2 and "inside the data folder" in err and len(err.strip().splitlines()) == 1
    assert sha256(catalogue) == before and not (folder / "report.pdf").exists()
    assert cli(capsys, *data, "stats")[0] == 0


def test_a_zero_length_catalogue_beside_an_index_is_refused_not_started_afresh(case, capsys):
    data, folder, _ = case
    catalogue = folder / "catalogue.sqlite3"
    for wal in folder.glob("catalogue.sqlite3-*"):
        wal.unlink()
    catalogue.write_bytes(b"")  # what `> catalogue.sqlite3` or an overwrite gone wrong leaves
    code, _, err = cli(capsys, *data, "stats")
    assert code == 2 and "the catalogue is empty (0 bytes)" in err and "index/" in err
    assert len(err.strip().splitlines()) == 1 and catalogue.stat().st_size == 0


def test_reports_and_exports_are_written_whole_and_private(case, capsys, tmp_path):
    data, _, _ = case
    report, export = tmp_path / "out" / "report.pdf", tmp_path / "out" / "audit.json"
    report.parent.mkdir()
    assert cli(capsys, *data, "case", "report", "C-1", "--pdf", report)[0] == 0
    assert cli(capsys, *data, "audit", "export", export)[0] == 0
    assert {p.stat().st_mode & 0o777 for p in (report, export)} == {0o600}
    good = report.read_bytes()

    # a disk that fills mid-write (ENOSPC as the kernel reports it when the data reach the disk):
    # the older report stays whole, and no partial file is left beside it
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    os.fsync = full_disk
    try:
        code, _, err = cli(capsys, *data, "case", "report", "C-1", "--pdf", report)
    finally:
        os.fsync = real_fsync
    assert code == 2 and "cannot write the report (No space left on device)" in err
    assert len(err.strip().splitlines()) == 1
    assert report.read_bytes() == good and sorted(p.name for p in report.parent.iterdir()) == [
        "audit.json",
        "report.pdf",
    ]


def test_the_export_checks_with_the_standard_library_alone(case, capsys, tmp_path):
    data, _, _ = case
    export = tmp_path / "audit.json"
    code, out, _ = cli(capsys, *data, "audit", "export", export)
    head = printed_head(out)
    entries = json.loads(export.read_text())["entries"]
    assert code == 0 and head == f"{len(entries)}:{entries[-1]['entry_sha256']}" and "(verified)" in out
    run = check_export(export)
    assert run.returncode == 0 and f"head {head}" in run.stdout, run.stderr
    assert check_export(export, "--against", head).returncode == 0

    document = json.loads(export.read_text())
    document["entries"][2]["operator"] = "eve"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    run = check_export(forged)
    assert run.returncode == 1 and "entry 3 was altered" in run.stdout

    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    run = check_export(not_json)
    assert run.returncode == 2 and str(not_json) in run.stderr


def test_a_rewrite_is_caught_against_the_head_a_report_printed(case, capsys, tmp_path):
    data, folder, _ = case
    report = tmp_path / "report.pdf"
    assert cli(capsys, *data, "case", "report", "C-1", "--pdf", report)[0] == 0
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(report).pages).split())
    head = text.split("Audit head at this report: ")[1].split(".")[0]
    assert "verified: the chain, and every case, search, result and review against its entry" in text

    with sqlite3.connect(folder / "catalogue.sqlite3") as db:
        review = db.execute("SELECT min(seq) FROM audit_log WHERE kind = 'review'").fetchone()[0]
    rewrite_chain_from(folder / "catalogue.sqlite3", review, edit_first_review_note)
    assert cli(capsys, *data, "audit", "verify")[0] == 0  # consistent: the file alone cannot tell
    code, out, _ = cli(capsys, *data, "audit", "verify", "--against", head)
    assert code == 1 and "is not the given head: the log was rewritten" in out

    export = tmp_path / "audit.json"
    assert cli(capsys, *data, "audit", "export", export)[0] == 0
    run = check_export(export, "--against", head)
    assert run.returncode == 1 and "rewritten" in run.stdout

    code, _, err = cli(capsys, *data, "audit", "verify", "--against", "12:abc")
    assert code == 2 and "is not a head" in err


def test_a_report_never_certifies_what_verify_rejects(case, capsys, tmp_path):
    data, folder, _ = case
    tamper(folder / "catalogue.sqlite3", "UPDATE reviews SET mark = 'possible' WHERE mark = 'excluded'")
    code, out, _ = cli(capsys, *data, "audit", "verify")
    assert code == 1 and "review 2 differs" in out
    report = tmp_path / "report.pdf"
    assert cli(capsys, *data, "case", "report", "C-1", "--pdf", report)[0] == 0
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(report).pages).split())
    assert "NOT VERIFIED" in text and "verified: the chain" not in text


def test_a_keyed_log_from_the_command_line(case, capsys, tmp_path):
    data, folder, photos = case
    code, _, err = cli(capsys, *data, "audit", "new-key", folder / "key")
    assert code == 2 and "outside the data folder" in err and not (folder / "key").exists()
    key = tmp_path / "keys" / "audit.key"
    key.parent.mkdir()
    code, out, _ = cli(capsys, *data, "audit", "new-key", key)
    assert code == 0 and key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64
    assert cli(capsys, *data, "audit", "new-key", key)[0] == 2  # never over an existing key

    # entries written before the key have no seal: a keyed check says so
    code, out, _ = cli(capsys, *data, "--audit-key", key, "audit", "verify")
    assert code == 1 and "entry 1 carries no seal" in out

    # a gallery kept under a key from its start
    keyed = ["--data-dir", tmp_path / "keyed", *data[2:]]
    os.environ["SKETCHSEARCH_AUDIT_KEY"] = str(key)  # the setting, as the window reads it
    try:
        assert cli(capsys, *keyed, "import", photos[0].parent)[0] == 0
        assert cli(capsys, *keyed, "case", "new", "K-1")[0] == 0
        assert cli(capsys, *keyed, "search", photos[1], "--case", "K-1")[0] == 0
        assert cli(capsys, *keyed, "review", 1, 1, "possible", "--note", "tattoo")[0] == 0
        code, out, _ = cli(capsys, *keyed, "audit", "verify")
        assert code == 0 and "every entry sealed under the key" in out
        export = tmp_path / "keyed.json"
        assert cli(capsys, *keyed, "audit", "export", export)[0] == 0
        assert check_export(export, "--key", key).returncode == 0

        review_entry = next(e["seq"] for e in json.loads(export.read_text())["entries"] if e["kind"] == "review")
        rewrite_chain_from(tmp_path / "keyed" / "catalogue.sqlite3", review_entry, edit_first_review_note)
        code, out, _ = cli(capsys, *keyed, "audit", "verify")
        assert code == 1 and f"entry {review_entry}'s seal does not match" in out
        assert cli(capsys, *keyed, "audit", "export", export)[0] == 0
        run = check_export(export, "--key", key)
        assert run.returncode == 1 and "seal does not match" in run.stdout
    finally:
        del os.environ["SKETCHSEARCH_AUDIT_KEY"]


def test_the_triggers_are_checked(case, capsys):
    data, folder, _ = case
    with sqlite3.connect(folder / "catalogue.sqlite3") as db:
        db.execute("DROP TRIGGER reviews_no_delete")
    code, out, _ = cli(capsys, *data, "audit", "verify")
    assert code == 1 and "trigger reviews_no_delete is missing" in out
