"""Model → Adapt to this gallery… and Model → Use…: a real adaptation (1 epoch of 2 steps) of the
session's model on a tiny gallery in the background while searches keep running; every button of
the adaptation window at every stage (reading, training, hidden, cancelling, cancelled, resumed,
done); closing it while it runs; quitting mid-run; the switch to another installed model, which
re-indexes the gallery."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import shiboken6
import torch
from app_helpers import GALLERY_SIZE, draw_figure_strokes, wait_for_results
from PySide6.QtCore import Qt

from app.adapt_dialog import ModelChooser
from core.model.checkpoint import read_manifest
from core.model.registry import installed_models, models_dir
from training.adapt import AdaptSettings

QUICK = AdaptSettings(epochs=1, batch=4, probe=8)  # 8 photos: 2 steps


def wait_for_model(qtbot, window, sha256: str) -> None:
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.model.sha256 == sha256, timeout=60000)


def wait_indexed(qtbot, window) -> None:
    def indexed():
        dialog = window.gallery_jobs.job_dialog
        return dialog is None or not dialog.running()

    qtbot.waitUntil(indexed, timeout=120000)
    qtbot.waitUntil(lambda: window.workspace.stats().indexed == GALLERY_SIZE, timeout=60000)


def work_folders(data_dir):
    folder = models_dir(data_dir)
    return [p for p in folder.iterdir() if p.name.endswith(".adapt")] if folder.is_dir() else []


def adapted_models(data_dir):
    return [m.path for m in installed_models(data_dir) if not m.bundled]


def assert_whole_private_state(work) -> None:
    names = {p.name for p in work.iterdir()}
    assert {"settings.json", "state.pt"} <= names <= {"settings.json", "state.pt", "log.csv"}, names
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in work.iterdir())
    torch.load(work / "state.pt", weights_only=True)


def closed(dialog) -> bool:
    return not shiboken6.isValid(dialog) or not dialog.isVisible()  # closing deletes it


def at_step(number: int):
    return lambda progress: progress.step == number and not progress.message and progress.guard is None


class Hold:
    """Holds the adaptation's thread at its first progress report that ``when`` accepts until released,
    so that the test's clicks land at that stage and not a step later."""

    def __init__(self, task, when):
        self.when = when
        self.reached, self.released = threading.Event(), threading.Event()
        task.signals.progress.connect(self._report, Qt.DirectConnection)  # runs on the training thread

    def _report(self, progress) -> None:
        if not self.reached.is_set() and self.when(progress):
            self.reached.set()
            self.released.wait(120)


@pytest.fixture
def hold():
    holds = []

    def _hold(task, when) -> Hold:
        holds.append(Hold(task, when))
        return holds[-1]

    yield _hold
    for each in holds:  # a failed test never leaves the training thread waiting
        each.released.set()


def test_every_button_at_every_stage(qtbot, make_window, own_gallery_workspace, hold):
    window = make_window(own_gallery_workspace)
    data_dir, base_sha = own_gallery_workspace.data_dir, own_gallery_workspace.model.sha256
    switcher = window.model_switcher
    switcher.settings = QUICK
    indicator = switcher.indicator

    # start, then Cancel while the gallery is being read: nothing kept
    window.menus.adapt_action.trigger()
    dialog = switcher.dialog
    assert dialog.isVisible() and dialog.run.running()
    assert dialog.status.text() == "Reading the gallery…"
    assert not dialog.use_button.isEnabled()
    assert dialog.cancel_button.isEnabled() and dialog.background_button.isEnabled()
    assert indicator.isVisible() and "Adapting" in indicator.text()
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert "Cancelling" in dialog.status.text() and not dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.run.running(), timeout=60000)
    assert dialog.run.state == "cancelled" and dialog.isVisible()
    assert work_folders(data_dir) == [] and adapted_models(data_dir) == []
    assert dialog.close_button.isVisible() and dialog.close_button.isEnabled()
    assert dialog.resume_button.isVisible() and not dialog.cancel_button.isVisible()
    assert not dialog.use_button.isEnabled()

    # again, held at the first step: Use does nothing, the window hides into the status bar and comes back
    qtbot.mouseClick(dialog.resume_button, Qt.LeftButton)
    assert dialog.run.running() and switcher.dialog is dialog
    held = hold(dialog.run.task, at_step(1))
    qtbot.waitUntil(lambda: held.reached.is_set() and "step 1 of 2" in dialog.status.text(), timeout=60000)
    assert "left" in dialog.status.text()  # the time left, from the step measured
    assert dialog.progress.value() == 1 and dialog.progress.maximum() == 2
    qtbot.mouseClick(dialog.use_button, Qt.LeftButton)  # disabled: nothing happens
    assert dialog.isVisible() and dialog.run.running() and window.workspace.model.sha256 == base_sha
    qtbot.mouseClick(dialog.background_button, Qt.LeftButton)
    assert not dialog.isVisible() and dialog.run.running()
    assert indicator.isVisible() and "50%" in indicator.text() and "left" in indicator.text()
    window.menus.adapt_action.trigger()  # reopening shows the one that runs
    assert switcher.dialog is dialog and dialog.isVisible()
    assert window.runner.pending() >= 1 and window.runner.pools["train"].activeThreadCount() == 1

    # Cancel during training: the step done is kept in a whole state
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert not dialog.cancel_button.isEnabled() and dialog.background_button.isEnabled()
    held.released.set()
    qtbot.waitUntil(lambda: not dialog.run.running(), timeout=60000)
    assert dialog.run.state == "cancelled", dialog.run.message
    [work] = work_folders(data_dir)
    assert_whole_private_state(work)
    assert adapted_models(data_dir) == []

    # resume: the step done is not run again, and a search runs on the current model meanwhile
    qtbot.mouseClick(dialog.resume_button, Qt.LeftButton)
    seen = []
    dialog.run.task.signals.progress.connect(lambda p: seen.append((p.epoch, p.step, p.message)))
    draw_figure_strokes(qtbot, window.canvas)
    wait_for_results(qtbot, window)
    assert window.candidates.rowCount() > 0 and window.workspace.model.sha256 == base_sha
    qtbot.waitUntil(lambda: not dialog.run.running(), timeout=120000)
    assert dialog.run.state == "done", dialog.run.message
    assert (1, 1, "") not in seen and (1, 2, "") in seen
    assert not work.exists()

    # done: Adapt again shows it, Use switches to the new model
    window.menus.adapt_action.trigger()
    assert switcher.dialog is dialog and dialog.run.state == "done"
    assert dialog.use_button.isEnabled() and dialog.use_button.isVisible()
    assert not dialog.cancel_button.isVisible() and not dialog.background_button.isVisible()
    [out] = adapted_models(data_dir)
    assert out == dialog.run.out
    manifest = read_manifest(out)
    assert manifest.provenance["base_model"]["weights_sha256"] == base_sha
    qtbot.mouseClick(dialog.use_button, Qt.LeftButton)
    wait_for_model(qtbot, window, manifest.weights_sha256)
    assert closed(dialog) and switcher.dialog is None and not indicator.isVisible()
    wait_indexed(qtbot, window)  # every photo embedded again for the adapted model
    assert window.settings.value("model_dir") == str(out)
    assert "adapted" in window.status_bar.model_label.text()


def test_closing_the_window_while_it_runs_asks_whether_to_keep_it_running(
    qtbot, make_window, own_gallery_workspace, hold
):
    window = make_window(own_gallery_workspace)
    switcher = window.model_switcher
    dialog = switcher.adapt_to_gallery(QUICK)
    held = hold(dialog.run.task, at_step(1))
    qtbot.waitUntil(held.reached.is_set, timeout=60000)
    for close in (dialog.close, lambda: qtbot.keyClick(dialog, Qt.Key_Escape)):
        close()
        question = dialog.question
        assert question.isVisible() and dialog.isVisible() and dialog.run.running()
        qtbot.mouseClick(question.back_button, Qt.LeftButton)  # Go back: nothing changes
        assert not question.isVisible() and dialog.isVisible() and dialog.run.running()
    dialog.close()
    qtbot.mouseClick(dialog.question.keep_button, Qt.LeftButton)
    assert not dialog.isVisible() and dialog.run.running() and switcher.indicator.isVisible()
    qtbot.mouseClick(switcher.indicator, Qt.LeftButton)  # the status bar brings it back
    assert dialog.isVisible()
    dialog.close()
    qtbot.mouseClick(dialog.question.cancel_button, Qt.LeftButton)
    held.released.set()
    qtbot.waitUntil(lambda: not dialog.run.running(), timeout=60000)
    assert dialog.run.state == "cancelled" and dialog.isVisible()
    dialog.close()  # ended: closes without a question
    assert closed(dialog) and switcher.dialog is None and not switcher.indicator.isVisible()


def test_quitting_mid_run_stops_it_and_leaves_a_whole_state_to_resume(qtbot, make_window, own_gallery_workspace, hold):
    data_dir = own_gallery_workspace.data_dir
    window = make_window(own_gallery_workspace)
    dialog = window.model_switcher.adapt_to_gallery(QUICK)
    held = hold(dialog.run.task, at_step(1))
    qtbot.waitUntil(held.reached.is_set, timeout=60000)
    held.released.set()
    window.close()
    assert window.runner.pools["train"].activeThreadCount() == 0  # stopped before the window went
    assert adapted_models(data_dir) == []
    [work] = work_folders(data_dir)
    assert_whole_private_state(work)
    again = make_window(own_gallery_workspace).model_switcher.adapt_to_gallery(QUICK)
    seen = []
    again.run.task.signals.progress.connect(lambda p: seen.append((p.epoch, p.step, p.message)))
    qtbot.waitUntil(lambda: not again.run.running(), timeout=120000)
    assert again.run.state == "done", again.run.message
    assert (1, 1, "") not in seen


def test_use_model_refuses_no_folder(window):
    model = window.workspace.model.sha256
    window.use_model(None)
    assert window.workspace is not None and window.workspace.model.sha256 == model
    assert "no model" in window.last_error.lower()
    assert window.settings.value("model_dir") is None


def test_use_switches_among_installed_models(qtbot, make_window, own_gallery_workspace, other_model):
    window = make_window(own_gallery_workspace)
    data_dir = own_gallery_workspace.data_dir
    shutil.copytree(other_model.folder, models_dir(data_dir) / "other")
    (models_dir(data_dir) / ".half-written.partial").mkdir()  # never offered
    chooser = ModelChooser(data_dir, own_gallery_workspace.model.sha256, window)
    qtbot.addWidget(chooser)
    names = [m.name for m in chooser.models]
    assert len(names) == 2 and chooser.models[0].bundled and chooser.models[1].path.name == "other"
    chooser.list.setCurrentRow(1)
    window.use_model(chooser.chosen().path)
    wait_for_model(qtbot, window, other_model.sha256)
    wait_indexed(qtbot, window)


def test_opening_the_adaptation_window_leaves_torch_to_the_training_thread():
    """Loading torch takes seconds (12 s seen on a busy machine): on the window's thread it froze the
    window at the first Model → Adapt, the menu drawn open and no click taken."""
    code = (
        "import sys\n"
        "import app.main_window, app.adapt_dialog, app.adapt_run, app.model_switcher\n"
        "print(sorted(m for m in ('torch', 'training.adapt', 'core.model.checkpoint') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_status_bar_button_never_widens_the_window(qtbot):
    """Its text changes every step; at its natural width it pushed the window wider (seen under X)."""
    from app.adapt_indicator import MIN_WIDTH, AdaptIndicator
    from app.status_bar import WindowStatusBar

    bar = WindowStatusBar()
    qtbot.addWidget(bar)
    bar.model_label.setText("Model: a long adapted model name (adapted to a gallery (AMA, unsupervised))")
    indicator = AdaptIndicator()
    bar.addPermanentWidget(indicator)
    before = bar.minimumSizeHint().width()

    class Running:
        def summary(self):
            return "Adapting the model: 23% · about 50 s left, and more words than any bar has room for"

    indicator.show_run(Running())
    bar.show()
    assert bar.minimumSizeHint().width() - before <= MIN_WIDTH + 40  # its margin and the bar's spacing
    assert indicator.sizeHint().width() > MIN_WIDTH  # where there is room, the whole text
