"""The ``sketchsearch`` entry point: headless commands run without Qt; ``--self-test`` passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code_or_args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "SKETCHSEARCH_DEVICE": "cpu", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_first_positional_skips_global_options():
    from app.main import first_positional

    assert first_positional(["--data-dir", "stats", "import", "x"]) == "import"
    assert first_positional(["--device", "cpu", "-v"]) is None
    assert first_positional(["--model", "m", "search", "a.png"]) == "search"


def test_headless_commands_and_help_do_not_load_qt(tmp_path):
    (tmp_path / "data").mkdir()  # only import creates a data folder
    code = (
        "import sys, json\n"
        "from app.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0\n"
        f"rc = main(['--data-dir', {str(tmp_path / 'data')!r}, 'stats', '--json'])\n"
        "assert rc == 0, rc\n"
        "assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt was imported'\n"
        "print('NO-QT-OK')\n"
    )
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--self-test" in result.stdout and "Headless commands" in result.stdout
    assert '"photos": 0' in result.stdout
    assert "NO-QT-OK" in result.stdout


@pytest.mark.slow
def test_self_test_exits_zero(tmp_path):
    result = _run(["-m", "app.main", "--self-test"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_window_without_a_display_says_so_in_one_line(tmp_path):
    run = _run(["-m", "app.main", "--data-dir", str(tmp_path / "data")], tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("error: no display to show the window on") and len(run.stderr.splitlines()) == 1
    assert not (tmp_path / "data").exists()  # nothing was opened or created
