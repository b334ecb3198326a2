"""Model → Adapt to this gallery… and Model → Use…: a real adaptation (1 epoch) of the session's
model on a tiny gallery in the background while searches keep running, cancel and resume, and the
switch to another installed model, which re-indexes the gallery."""

from __future__ import annotations

import shutil

from app_helpers import GALLERY_SIZE, draw_figure_strokes, wait_for_results

from app.adapt_dialog import ModelChooser
from core.model.checkpoint import read_manifest
from core.model.registry import installed_models, models_dir
from training.adapt import AdaptSettings

QUICK = AdaptSettings(epochs=1, batch=4, probe=8)


def wait_for_model(qtbot, window, sha256: str) -> None:
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.model.sha256 == sha256, timeout=60000)


def wait_indexed(qtbot, window) -> None:
    def indexed():
        dialog = window.gallery_jobs.job_dialog
        return dialog is None or not dialog.running()

    qtbot.waitUntil(indexed, timeout=120000)
    qtbot.waitUntil(lambda: window.workspace.stats().indexed == GALLERY_SIZE, timeout=60000)


def test_adapt_in_the_background_then_use_the_new_model(qtbot, make_window, own_gallery_workspace):
    window = make_window(own_gallery_workspace)
    base_sha = own_gallery_workspace.model.sha256
    dialog = window.model_switcher.adapt_to_gallery(QUICK)
    assert dialog.running()
    draw_figure_strokes(qtbot, window.canvas)  # a search on the current model while it trains
    wait_for_results(qtbot, window)
    assert window.candidates.rowCount() > 0 and window.workspace.model.sha256 == base_sha
    qtbot.waitUntil(lambda: not dialog.running(), timeout=180000)
    assert dialog.state == "done", dialog.message
    manifest = read_manifest(dialog.out)
    assert manifest.provenance["base_model"]["weights_sha256"] == base_sha
    assert dialog.out.parent == models_dir(own_gallery_workspace.data_dir)
    assert [m.path for m in installed_models(own_gallery_workspace.data_dir) if not m.bundled] == [dialog.out]
    dialog.use_button.click()
    wait_for_model(qtbot, window, manifest.weights_sha256)
    wait_indexed(qtbot, window)  # every photo embedded again for the adapted model
    assert window.settings.value("model_dir") == str(dialog.out)
    assert "adapted" in window.status_bar.model_label.text()


def test_cancel_then_adapt_again_resumes(qtbot, make_window, own_gallery_workspace):
    window = make_window(own_gallery_workspace)
    settings = AdaptSettings(epochs=2, batch=4, probe=8)
    dialog = window.model_switcher.adapt_to_gallery(settings)
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1, timeout=120000)  # a step done
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60000)
    assert dialog.state == "cancelled" and "resumes" in dialog.message
    work = [p for p in models_dir(own_gallery_workspace.data_dir).iterdir() if p.name.endswith(".adapt")]
    assert len(work) == 1 and (work[0] / "state.pt").is_file()
    dialog.close()
    again = window.model_switcher.adapt_to_gallery(settings)
    seen = []
    again.task.signals.progress.connect(lambda p: seen.append((p.epoch, p.step)))
    qtbot.waitUntil(lambda: not again.running(), timeout=180000)
    assert again.state == "done", again.message
    assert (1, 1) not in seen  # the step done before the cancel is not run again
    assert not work[0].exists()


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
