#!/usr/bin/env python3
"""Set up SketchSearch in ./.venv (created if needed) and run it or its tests.

    python3 bootstrap.py app [ARGS...]    install if needed, then start SketchSearch
    python3 bootstrap.py test [ARGS...]   install if needed, then run the whole test suite
    python3 bootstrap.py build            install if needed, then build dist/sketchsearch/ (PyInstaller)
    python3 bootstrap.py lint             install if needed, then check style and layering (ruff, import-linter)

Needs only python3 (3.11+). The install is repeated only when pyproject.toml changes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".sketchsearch-installed"


def run(*command: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)


# cluster: the test suite runs the Ray embedding job on a local Ray (about half a minute); the
# desktop bundle leaves Ray out all the same (build.spec excludes it)
def ensure_installed(extras: str = "dev,build,cluster") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - bootstrap runs under whatever python3 a machine has
        sys.exit(f"SketchSearch needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not PYTHON.exists():
        run(sys.executable, "-m", "venv", VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extras}]")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("app", "test", "build", "lint"):
        print(__doc__)
        return 2
    ensure_installed()
    command, rest = argv[0], argv[1:]
    if command == "app":
        return subprocess.call([str(BIN / "sketchsearch"), *rest])
    if command == "build":
        return subprocess.call(
            [str(BIN / "pyinstaller"), "--noconfirm", "--log-level", "WARN", "build.spec", *rest], cwd=ROOT
        )
    if command == "lint":
        checks = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["lint-imports"]]
        failed = [check for check in checks if subprocess.call([str(BIN / check[0]), *check[1:]], cwd=ROOT)]
        return 1 if failed else 0
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
