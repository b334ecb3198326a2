"""``bootstrap.py app`` finds the system libraries Qt's X11 plugin lacks and names the command
that installs them (checked against the real plugin and the real dynamic loader)."""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="Linux with ldd")
def test_missing_libraries_of_the_real_xcb_plugin_are_the_ones_the_loader_cannot_find():
    bootstrap = load_bootstrap()
    plugin = bootstrap.xcb_plugin(Path(sys.prefix))
    assert plugin is not None and plugin.is_file()
    missing = bootstrap.missing_libraries(plugin)
    needed = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    for line in needed.splitlines():
        soname, arrow, where = line.strip().partition(" => ")
        if not arrow:
            continue
        if where == "not found":
            assert soname in missing and not loadable(soname), soname  # the loader cannot find it either
        else:
            assert soname not in missing and Path(where.split()[0]).is_file(), soname


def test_install_command_names_the_debian_packages():
    bootstrap = load_bootstrap()
    command = bootstrap.install_command(
        ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0", "libX11-xcb.so.1", "libxcb-icccm.so.4"]
    )
    assert command == "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libx11-xcb1"


def test_no_check_without_a_display_or_for_headless_commands(monkeypatch):
    bootstrap = load_bootstrap()
    monkeypatch.delenv("DISPLAY", raising=False)
    assert bootstrap.check_window_libraries([]) is None  # the offscreen platform needs none of them
    monkeypatch.setenv("DISPLAY", ":0")
    assert bootstrap.check_window_libraries(["stats", "--json"]) is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert bootstrap.check_window_libraries([]) is None
