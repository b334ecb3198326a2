"""``sketchsearch-train adapt`` end to end on a tiny gallery of drawn photos with the bundled model on
the CPU: the manifest it writes, resume after cancel and after kill -9, the collapse guard, a
full disk (a real 1 MB tmpfs) and bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.catalogue.catalogue import Catalogue
from core.common.errors import CheckpointError, SketchSearchError
from core.model.checkpoint import load_checkpoint
from training.adapt import (
    MIN_PHOTOS,
    AdaptationCancelled,
    AdaptationCollapsed,
    AdaptSettings,
    adapt,
    default_work_dir,
    seconds_left,
)
from training.cli import main as train_main

REPO = Path(__file__).resolve().parents[2]
QUICK = AdaptSettings(epochs=1, batch=4, probe=8, threads=1)  # 8 photos: 2 steps per epoch


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, inference_model) -> Path:
    """A data folder holding MIN_PHOTOS drawn photos, imported for real."""
    from core.workspace import Workspace

    photos = tmp_path_factory.mktemp("adapt-photos")
    for i in range(MIN_PHOTOS):
        draw_person(100 + i).save(photos / f"person_{i}.jpg", quality=90)
    data = tmp_path_factory.mktemp("adapt-gallery")
    with Workspace(data, model=inference_model) as workspace:
        assert workspace.import_paths([photos]).added == MIN_PHOTOS
    return data


def draw_person(seed: int) -> Image.Image:
    """A figure in random clothes on a random background: distinct content per seed."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, size=(192, 96, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    colour = lambda: tuple(int(c) for c in rng.integers(0, 255, 3))  # noqa: E731
    draw.ellipse([34, 6, 62, 38], fill=(230, 190, 160))
    draw.rectangle([24, 38, 72, 106], fill=colour())
    draw.rectangle([29, 106, 67, 182], fill=colour())
    return image


def gallery_hash(data_dir: Path) -> str:
    catalogue = Catalogue(data_dir)
    shas = sorted(sha for _, _, sha in catalogue.present_photos())
    catalogue.close()
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def test_adapt_reports_its_steps_and_writes_a_model_whose_manifest_names_base_gallery_settings_and_time(
    tmp_path, gallery, model_dir
):
    out = tmp_path / "adapted"
    reports = []
    result = adapt(model_dir, gallery, out, settings=QUICK, command="test", progress=reports.append)
    steps = [p for p in reports if not p.message and p.guard is None]
    assert [(p.done, p.total) for p in steps] == [(1, 2), (2, 2)]  # the run's steps, counted
    assert all(p.seconds_left is not None and p.seconds_left >= 0 for p in steps)  # from the steps timed
    assert [p.seconds_left for p in reports if p.message == "Writing the model…"] == [None]  # never guessed
    network, manifest = load_checkpoint(out)
    base_network, base = load_checkpoint(model_dir)
    # by default the batch-norm statistics stay the base model's (pseudo-sketches are not the
    # queries); the weights move
    adapted_state, base_state = network.state_dict(), base_network.state_dict()
    stats = [k for k in base_state if k.endswith("running_mean")]
    assert stats and all(torch.equal(adapted_state[k], base_state[k]) for k in stats)
    provenance = manifest.provenance
    assert provenance["base_model"] == {"name": base.name, "weights_sha256": base.weights_sha256}
    assert provenance["gallery"]["photos"] == MIN_PHOTOS
    assert provenance["gallery"]["photos_sha256"] == gallery_hash(gallery)
    assert provenance["settings"]["epochs"] == 1 and provenance["settings"]["lr"] == QUICK.lr
    assert provenance["created"].startswith(str(time.gmtime().tm_year))
    assert [row["epoch"] for row in provenance["guard"]] == [0, 1]  # the base model's figures, then each epoch
    assert manifest.weights_sha256 != base.weights_sha256  # the weights moved
    assert manifest.embedding_key != base.embedding_key  # so a gallery re-indexes for it
    assert result.resumed_at is None
    assert not default_work_dir(out).exists()  # the state is removed once the model is written
    assert not list(tmp_path.glob(".adapted.*"))


def test_cancelled_run_resumes_where_it_stopped(tmp_path, gallery, model_dir):
    out = tmp_path / "adapted"
    cancel = threading.Event()
    settings = AdaptSettings(epochs=2, batch=4, probe=8, threads=1)

    def stop_after_first_step(progress):
        if progress.step == 1 and progress.epoch == 1:
            cancel.set()

    with pytest.raises(AdaptationCancelled, match="epoch 1, step 1; run it again to resume"):
        adapt(model_dir, gallery, out, settings=settings, progress=stop_after_first_step, cancel=cancel)
    assert not out.exists()
    partial = tmp_path / ".adapted.killed-while-writing.partial"  # what a kill during the write leaves
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    steps = []
    result = adapt(
        model_dir, gallery, out, settings=settings, progress=lambda p: p.message or steps.append((p.epoch, p.step))
    )
    assert result.resumed_at == (1, 1)
    assert (1, 1) not in steps and (1, 2) in steps and (2, 2) in steps  # the first step is not run again
    load_checkpoint(out)
    assert not partial.exists()


def test_the_agencys_own_sketches_join_the_training(tmp_path, gallery, model_dir):
    sketches = tmp_path / "sketches"
    sketches.mkdir()
    for i in range(3):
        image = Image.new("RGB", (96, 192), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse([34, 6 + i, 62, 38], outline="black", width=2)
        draw.line([48, 38, 48 - 10 * i, 120, 40, 182], fill="black", width=3)
        image.save(sketches / f"sketch_{i}.png")
    out = tmp_path / "adapted"
    adapt(model_dir, gallery, out, sketches=sketches, settings=replace(QUICK, freeze_photo_statistics=False))
    network, manifest = load_checkpoint(out)
    assert manifest.provenance["sketches"] == 3
    base_state, adapted_state = load_checkpoint(model_dir)[0].state_dict(), network.state_dict()
    photo_stats = [k for k in base_state if k.startswith("photo.") and k.endswith("running_mean")]
    sketch_stats = [k for k in base_state if k.startswith("sketch.") and k.endswith("running_mean")]
    assert any(not torch.equal(adapted_state[k], base_state[k]) for k in photo_stats)  # asked to follow
    assert all(torch.equal(adapted_state[k], base_state[k]) for k in sketch_stats)


def test_another_gallery_or_setting_does_not_resume_a_foreign_state(tmp_path, gallery, model_dir):
    out = tmp_path / "adapted"
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(AdaptationCancelled):
        adapt(model_dir, gallery, out, settings=QUICK, cancel=cancel)
    other = AdaptSettings(epochs=1, batch=4, probe=8, threads=1, lr=1e-5)
    assert adapt(model_dir, gallery, out, settings=other).resumed_at is None


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_command(tmp_path, gallery, model_dir):
    out, work = tmp_path / "adapted", tmp_path / "work"
    command = [sys.executable, "-m", "training.cli", "adapt", "--model", str(model_dir), "--data-dir", str(gallery)]
    command += ["--out", str(out), "--work", str(work), "--epochs", "2", "--batch", "2", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (work / "state.pt").exists():  # written after the first epoch
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "resumed at epoch 2 step 0" in done.stdout
    load_checkpoint(out)


def test_collapse_stops_the_run_and_writes_no_model(tmp_path, gallery, model_dir):
    out = tmp_path / "adapted"
    wild = AdaptSettings(epochs=1, batch=4, probe=8, threads=1, lr=1e3)  # a learning rate that wrecks the network
    with pytest.raises(AdaptationCollapsed, match="no model was written"):
        adapt(model_dir, gallery, out, settings=wild)
    assert not out.exists() and not default_work_dir(out).exists()
    assert not list(tmp_path.iterdir())


@pytest.fixture
def full_disk(tmp_path):
    """A real 1 MB tmpfs (the model needs about 3 MB): needs the right to mount."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_while_writing_leaves_nothing_that_loads_and_a_rerun_finishes(
    tmp_path, gallery, model_dir, full_disk
):
    out, work = full_disk / "adapted", tmp_path / "work"
    with pytest.raises(SketchSearchError, match=r"cannot write the model \(No space left on device\)"):
        adapt(model_dir, gallery, out, settings=QUICK, work_dir=work)
    assert list(full_disk.iterdir()) == []  # no half model, no temporary folder
    assert (work / "state.pt").is_file()  # the trained epoch is kept
    subprocess.run(["mount", "-o", "remount,size=64m", str(full_disk)], check=True)  # room again
    result = adapt(model_dir, gallery, out, settings=QUICK, work_dir=work)
    assert result.resumed_at == (2, 0)  # nothing trained again: only the model is written
    load_checkpoint(out)


def test_cli_reports_bad_input_in_one_line(tmp_path, gallery, model_dir, capsys, make_photos, inference_model):
    from core.workspace import Workspace

    empty = tmp_path / "empty"
    Workspace(empty, model=inference_model).close()
    three = tmp_path / "three"
    with Workspace(three, model=inference_model) as workspace:
        workspace.import_paths(make_photos(3))
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    existing = tmp_path / "existing"
    existing.mkdir()
    cases = {
        "empty": (["--model", str(model_dir), "--data-dir", str(empty)], "0 photo(s) catalogued"),
        "three": (
            ["--model", str(model_dir), "--data-dir", str(three)],
            f"3 photo(s) catalogued; adaptation needs at least {MIN_PHOTOS}",
        ),
        "no gallery": (["--model", str(model_dir), "--data-dir", str(tmp_path / "nowhere")], "no gallery here"),
        "not a model": (["--model", str(not_a_model), "--data-dir", str(gallery)], "not a model folder"),
        "no sketches": (
            ["--model", str(model_dir), "--data-dir", str(gallery), "--sketches", str(tmp_path / "none")],
            "not a folder of sketches",
        ),
    }
    for name, (args, message) in cases.items():
        code = train_main(["adapt", *args, "--out", str(tmp_path / f"out-{name.replace(' ', '-')}")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (name, err)
    code = train_main(["adapt", "--model", str(model_dir), "--data-dir", str(gallery), "--out", str(existing)])
    err = capsys.readouterr().err
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    with pytest.raises(CheckpointError):
        load_checkpoint(not_a_model)


def test_a_work_folder_that_is_not_an_adaptation_state_is_refused_and_kept(tmp_path, gallery, model_dir, capsys):
    work = tmp_path / "evidence"
    work.mkdir()
    kept = work / "notes.txt"
    kept.write_text("not training state\n", encoding="utf-8")
    args = ["adapt", "--model", str(model_dir), "--data-dir", str(gallery), "--out", str(tmp_path / "out")]
    args += ["--epochs", "1", "--batch", "4", "--threads", "1"]
    code = train_main([*args, "--work", str(work)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{work}: not an adaptation state folder" in err and "notes.txt" in err and "nothing was deleted" in err
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
    assert kept.read_text(encoding="utf-8") == "not training state\n"
    assert not (tmp_path / "out").exists()
    # a file where the folder should be is refused too
    code = train_main([*args, "--work", str(kept)])
    err = capsys.readouterr().err
    assert code == 2 and f"{kept}: not a folder" in err and err.count("\n") == 1, err
    assert kept.is_file()


# a cancel lands at the first progress report of its stage (the report comes just before that stage's
# work); before any step is trained nothing is kept, afterwards a whole state a rerun resumes from
CANCEL_STAGES = {
    "reading the gallery": (lambda p: True, None),  # set before the run starts
    "measuring the base model": (lambda p: p.message == "Measuring the base model…", None),
    "a training step": (lambda p: (p.epoch, p.step) == (1, 1) and not p.message, (1, 1)),
    "measuring the epoch": (lambda p: p.message.startswith("Measuring the model after epoch 1"), (1, 2)),
    "writing the model": (lambda p: p.message == "Writing the model…", (2, 0)),
}


@pytest.mark.parametrize("stage", CANCEL_STAGES)
def test_cancel_at_every_stage_keeps_a_whole_state_or_nothing(tmp_path, gallery, model_dir, stage):
    when, resumes_at = CANCEL_STAGES[stage]
    out = tmp_path / "adapted"
    work = default_work_dir(out)
    cancel = threading.Event()
    if stage == "reading the gallery":
        cancel.set()
    after_cancel = []

    def watch(progress):
        if cancel.is_set():
            after_cancel.append(progress)
        elif when(progress):
            cancel.set()

    with pytest.raises(AdaptationCancelled, match="cancelled"):
        adapt(model_dir, gallery, out, settings=QUICK, progress=watch, cancel=cancel)
    assert not [p for p in after_cancel if p.step > 0 and not p.message]  # no step trained once cancelled
    assert not out.exists() and not list(tmp_path.glob(".adapted.*.partial"))
    if resumes_at is None:
        assert not work.exists()  # nothing trained: nothing kept
        return
    names = {p.name for p in work.iterdir()}
    assert {"settings.json", "state.pt"} <= names <= {"settings.json", "state.pt", "log.csv"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in work.iterdir())
    torch.load(work / "state.pt", weights_only=True)  # whole
    trained = []
    result = adapt(model_dir, gallery, out, settings=QUICK, progress=lambda p: p.message or trained.append(p))
    assert result.resumed_at == resumes_at
    done_before = min(2, 2 * (resumes_at[0] - 1) + resumes_at[1])  # QUICK: 1 epoch of 2 steps
    assert len([p for p in trained if p.guard is None]) == 2 - done_before  # no step trained twice
    load_checkpoint(out)
    assert not work.exists()


def test_time_left_comes_from_the_measured_step_times():
    # steps took 2 s each after a slow first one; 10 steps and one 5 s measurement left
    assert seconds_left([9.0, 2.0, 2.0, 2.0], steps_left=10, measure_seconds=5.0, measures_left=1) == 25.0
    assert seconds_left([], steps_left=10, measure_seconds=None, measures_left=1) is None
    assert seconds_left([3.0], steps_left=0, measure_seconds=None, measures_left=0) == 0.0
    # the recent steps count, not those of a machine that was busier earlier
    assert seconds_left([8.0] * 30 + [1.0] * 30, steps_left=4, measure_seconds=None, measures_left=0) == 4.0
