#!/usr/bin/env python3
"""Set up SketchSearch in ./.venv (created if needed) and run it or its tests.

    python3 bootstrap.py app [ARGS...]    install if needed, then start SketchSearch
    python3 bootstrap.py test [ARGS...]   install if needed, then run the whole test suite
    python3 bootstrap.py build [--gpu]    install if needed, then build dist/sketchsearch/ (PyInstaller;
                                          --gpu: dist/sketchsearch-gpu/, with torch and CUDA)
    python3 bootstrap.py lint             install if needed, then check style and layering (ruff, import-linter)

Needs only python3 (3.11+). The install is repeated only when pyproject.toml changes. On Linux,
``app`` first checks that the system libraries Qt's X11 (xcb) platform plugin needs are installed,
and if some are not, prints the one command that installs them."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
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
DETECTOR = ROOT / "resources" / "detector" / "ssdlite_pedestrian.onnx"
# the converted detector is not kept in git: a development checkout links the reference conversion
# beside it (tools/convert_detector.py rebuilds it); its sha256 is checked whenever it is loaded
DETECTOR_REFERENCE = ROOT.parent / "shared" / "data" / "video" / "detector" / DETECTOR.name


def link_detector() -> None:
    if not DETECTOR.exists() and DETECTOR_REFERENCE.is_file():
        DETECTOR.unlink(missing_ok=True)  # a dangling link
        DETECTOR.symlink_to(DETECTOR_REFERENCE)


def ensure_installed(extras: str = "dev,build,cluster") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - bootstrap runs under whatever python3 a machine has
        sys.exit(f"SketchSearch needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    link_detector()
    if not PYTHON.exists():
        run(sys.executable, "-m", "venv", VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{extras}]")
    STAMP.write_text(wanted)


# Debian/Ubuntu packages of the libraries Qt's xcb plugin links that a minimal desktop install may
# lack; others follow Debian's naming rule (see apt_package)
APT_PACKAGES = {
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
# the command line's sub-commands (and the self-test) run without a display
_HEADLESS = (
    *("import", "search", "attributes", "verify", "rebuild-index", "stats", "prune", "case", "review", "audit"),
    *("import-embeddings", "--self-test", "--help"),
)


def xcb_plugin(venv: Path = VENV) -> Path | None:
    """Qt's X11 platform plugin as installed with PySide6 in ``venv``."""
    found = sorted(venv.glob("lib/python3*/site-packages/PySide6/Qt/plugins/platforms/libqxcb.so"))
    return found[0] if found else None


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries that ``binary`` (or a library it loads) needs and the system lacks, per ldd."""
    if shutil.which("ldd") is None:
        return []
    done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    found = re.findall(r"^\s*(\S+) => not found", done.stdout, flags=re.MULTILINE)
    return list(dict.fromkeys(found))  # each once, in ldd's order


def apt_package(soname: str) -> str:
    """Debian's package for a library: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``; a name that
    ends in a digit takes a dash (``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``)."""
    if soname in APT_PACKAGES:
        return APT_PACKAGES[soname]
    name, _, version = soname.partition(".so.")
    name = name.lower()
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def install_command(sonames: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(dict.fromkeys(apt_package(s) for s in sonames))


def check_window_libraries(argv: list[str]) -> str | None:
    """Before the window starts on Linux with a display: what is missing for Qt's X11 plugin, and the
    command that installs it (None when all is there, or no window will open)."""
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None  # no X display: the app uses the offscreen platform, which needs none of them
    if os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb" or any(a in _HEADLESS for a in argv):
        return None
    plugin = xcb_plugin()
    missing = missing_libraries(plugin) if plugin else []
    if not missing:
        return None
    return (
        f"The window needs system libraries that are not installed: {', '.join(missing)}.\n"
        f"On Debian or Ubuntu, install them with:\n\n    {install_command(missing)}\n\n"
        "(on other systems, install the packages that provide these files), then run this again."
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("app", "test", "build", "lint"):
        print(__doc__)
        return 2
    ensure_installed()
    command, rest = argv[0], argv[1:]
    if command == "app":
        problem = check_window_libraries(rest)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return subprocess.call([str(BIN / "sketchsearch"), *rest])
    if command == "build":
        variant = "gpu" if "--gpu" in rest else "cpu"
        rest = [arg for arg in rest if arg != "--gpu"]
        return subprocess.call(
            [str(BIN / "pyinstaller"), "--noconfirm", "--log-level", "WARN", "build.spec", *rest],
            cwd=ROOT,
            env={**os.environ, "SKETCHSEARCH_VARIANT": variant},
        )
    if command == "lint":
        checks = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["lint-imports"]]
        failed = [check for check in checks if subprocess.call([str(BIN / check[0]), *check[1:]], cwd=ROOT)]
        return 1 if failed else 0
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    return subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
