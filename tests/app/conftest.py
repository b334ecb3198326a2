"""Fixtures for the desktop application: the offscreen platform, one real gallery (a temporary
catalogue of generated figures) imported once and copied for the tests that change it, and a guard
against leftover threads."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt module loads

import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from app_helpers import GALLERY_SIZE  # noqa: E402


def _python_threads() -> set[threading.Thread]:
    # Qt's pool threads show up as dummy threads once Python ran in them; they are checked through
    # the pools' own counts instead.
    return {t for t in threading.enumerate() if t.is_alive() and not isinstance(t, threading._DummyThread)}


@pytest.fixture(autouse=True)
def no_threads_left():
    """Fail a test that leaves a worker running once its windows are closed."""
    before = _python_threads()
    yield
    from PySide6.QtCore import QThreadPool

    from app.workers import busy_threads

    deadline = time.monotonic() + 3.0
    while True:
        leftover = _python_threads() - before
        busy = QThreadPool.globalInstance().activeThreadCount() + busy_threads()
        if not leftover and busy == 0:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted(t.name for t in leftover))
            pytest.fail(f"threads left running after the test: {busy} pool thread(s); python threads: {names}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory) -> Path:
    from app.self_test import write_figures

    folder = tmp_path_factory.mktemp("figures")
    write_figures(folder, GALLERY_SIZE)
    return folder


@pytest.fixture(scope="session")
def gallery_template(tmp_path_factory, inference_model, gallery_dir) -> Path:
    """A data folder (catalogue and index) holding GALLERY_SIZE generated photos, imported once and
    closed; workspaces open copies of it, so none has to embed the photos again."""
    from core.workspace import Workspace

    folder = tmp_path_factory.mktemp("gallery-data")
    with Workspace(folder, model=inference_model) as workspace:
        summary = workspace.import_paths([gallery_dir])
    assert summary.added == GALLERY_SIZE and not summary.failed
    return folder


def _open_copy(template: Path, folder: Path, model):
    from core.workspace import Workspace

    shutil.copytree(template, folder)
    return Workspace(folder, model=model)


@pytest.fixture(scope="session")
def gallery_workspace(tmp_path_factory, inference_model, gallery_template):
    """One workspace for the session, for tests that only read the gallery. A test that changes it
    (attributes, imports) takes ``own_gallery_workspace`` instead."""
    workspace = _open_copy(gallery_template, tmp_path_factory.mktemp("shared") / "data", inference_model)
    yield workspace
    workspace.close()


@pytest.fixture
def own_gallery_workspace(tmp_path, inference_model, gallery_template):
    """A workspace over this test's own copy of the gallery."""
    workspace = _open_copy(gallery_template, tmp_path / "own-data", inference_model)
    yield workspace
    workspace.close()


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def make_window(qtbot, settings):
    """A shown main window over a given (already open) workspace; closed at the end of the test."""
    from app.main_window import LaunchOptions, MainWindow

    windows = []

    def _make(workspace):
        window = MainWindow(LaunchOptions(), settings, workspace=workspace)
        # a test's drawing is not work to save: closing never stops to ask about it
        qtbot.addWidget(window, before_close_func=lambda w: w.document.undo_stack.setClean())
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield _make
    for window in windows:
        window.document.undo_stack.setClean()
        window.close()


@pytest.fixture
def window(make_window, gallery_workspace):
    return make_window(gallery_workspace)
