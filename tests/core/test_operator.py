"""One operator for the window and the command line: stored in the data folder, overridden by
SKETCHSEARCH_OPERATOR and --operator, with the OS account recorded beside it in every audit entry."""

from __future__ import annotations

import json

import pytest

from core.common.errors import SketchSearchError
from core.common.operator import OPERATOR_FILE, OPERATOR_VARIABLE, os_account, resolve_operator, save_operator
from tests.core.test_casework_cli import gallery  # noqa: F401 - the fixture
from tests.core.test_cli import cli


def test_the_flag_then_the_variable_then_the_data_folder_then_the_os_account(tmp_path, monkeypatch):
    monkeypatch.delenv(OPERATOR_VARIABLE, raising=False)
    assert resolve_operator(tmp_path).name == os_account() and resolve_operator(tmp_path).source == "the OS account"
    save_operator(tmp_path, "  J. Smith ")
    assert (tmp_path / OPERATOR_FILE).stat().st_mode & 0o777 == 0o600
    stored = resolve_operator(tmp_path)
    assert (stored.name, stored.os_account, stored.source) == ("J. Smith", os_account(), "the data folder's setting")
    monkeypatch.setenv(OPERATOR_VARIABLE, "K. Jones")
    assert resolve_operator(tmp_path).name == "K. Jones"
    assert resolve_operator(tmp_path, "L. Brown").name == "L. Brown"
    assert resolve_operator(tmp_path, "L. Brown").label == f"L. Brown (OS account: {os_account()})"
    for bad in ("", "   ", "a\u0007b", "x" * 201):
        with pytest.raises(SketchSearchError, match="operator"):
            save_operator(tmp_path, bad)
    (tmp_path / OPERATOR_FILE).write_text("[1, 2]")
    monkeypatch.delenv(OPERATOR_VARIABLE)
    with pytest.raises(SketchSearchError, match=f"{OPERATOR_FILE}: not an operator setting"):
        resolve_operator(tmp_path)


def test_the_command_line_uses_the_stored_operator_and_records_the_os_account(gallery, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(OPERATOR_VARIABLE, raising=False)
    data, _photos = gallery
    capsys.readouterr()
    code, out, _ = cli(capsys, *data, "operator", "J. Smith")
    assert code == 0 and "J. Smith" in out
    code, out, _ = cli(capsys, *data, "operator")
    assert code == 0 and f"J. Smith (OS account: {os_account()}), from the data folder's setting" in out
    assert cli(capsys, *data, "case", "new", "C-1")[0] == 0
    assert cli(capsys, *data, "case", "new", "C-2", "--operator", "Bo")[0] == 0
    monkeypatch.setenv(OPERATOR_VARIABLE, "Eve")
    assert cli(capsys, *data, "case", "new", "C-3")[0] == 0
    code, out, _ = cli(capsys, *data, "case", "list", "--json")
    assert [c["operator"] for c in json.loads(out)] == ["J. Smith", "Bo", "Eve"]

    code, out, _ = cli(capsys, *data, "audit", "export", data[1].parent / "log.json")
    entries = json.loads((data[1].parent / "log.json").read_text())["entries"]
    opened = [e for e in entries if e["kind"] in ("case opened", "operator set")]
    assert [(e["kind"], e["operator"]) for e in opened] == [
        ("operator set", "J. Smith"), ("case opened", "J. Smith"), ("case opened", "Bo"), ("case opened", "Eve")
    ]  # fmt: skip
    assert all(json.loads(e["payload_json"])["os_account"] == os_account() for e in opened)

    code, _, err = cli(capsys, *data, "case", "new", "C-4", "--operator", "a\u0007b")
    assert code == 2 and "--operator" in err and len(err.strip().splitlines()) == 1
