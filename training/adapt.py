"""Unsupervised adaptation of a model to an agency's gallery (AMA: self-distillation from an EMA
teacher and asymmetric cross-modality mutual alignment, see ``training/ama.py``).

It trains on the gallery's catalogued photos (no label of any kind), on pencil pseudo-sketches
drawn from them and on any sketches the user points to, starting from a model. The teacher, the
smoothed network, is what is exported.

Files: the training state lives in a work folder (default ``.<out name>.adapt`` beside ``out``);
the same command run again resumes from it. The model is written into a hidden temporary folder
beside ``out``, flushed to disk, then renamed to ``out``: a killed run or a full disk never leaves
a folder named ``out`` that is not a whole model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import queue
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from torch.utils.data import Dataset

from core.catalogue.catalogue import Catalogue
from core.common.errors import ImageLoadError, SketchSearchError
from core.common.imaging import load_rgb
from core.common.private_files import atomic_private_file, make_private_folder, write_private_file
from core.gallery.scanning import iter_image_files
from core.model.checkpoint import Manifest, load_checkpoint, read_manifest, save_checkpoint
from core.model.inference import InferenceModel, choose_device
from core.model.network import Modality, SketchPhotoNet
from core.model.onnx_export import export_onnx
from core.model.preprocess import PreprocessConfig, normalise, prepare
from training.ama import EmaTeacher, MutualAlignmentLoss, SelfDistillationLoss
from training.batchnorm_folding import folded_batch_norms
from training.collapse_guard import CollapseGuard, GuardFigures, measure
from training.dataset import Augmentation, augment_uint8, pencil_sketch
from training.heap import reused_heap

log = logging.getLogger(__name__)

MIN_PHOTOS = 8  # the neighbour relations are taken within a batch: fewer photos give none worth learning
STATE_FILE = "state.pt"
STATE_EVERY = 50  # steps between saves of the training state within an epoch
SETTINGS_FILE = "settings.json"
LOG_FILE = "log.csv"
# what an adaptation writes into its work folder, and nothing else: only these are ever deleted
STATE_FILES = (SETTINGS_FILE, STATE_FILE, LOG_FILE)
LOG_COLUMNS = ("epoch", "seconds", "steps", "distillation", "alignment", "loss", "spread", "neighbour_agreement")
IDENTITY_KEYS = frozenset({"base_weights_sha256", "gallery_photos_sha256", "sketches", "settings", "out"})
GUARD_CHUNK = 16  # probe photos embedded between two looks at the cancel flag
RECENT_STEPS = 20  # the step times the time left is estimated from


class AdaptationCancelled(SketchSearchError):
    """The run was cancelled: what it trained is kept as a whole state the same command resumes
    from, or, if it trained nothing yet, nothing is kept."""


class AdaptationCollapsed(SketchSearchError):
    """The collapse guard stopped the run; no model was written."""


@dataclass(frozen=True)
class AdaptSettings:
    # one epoch of the 4,922-photo large gallery: 222-282 s on 2 shared CPU cores (the issue allows
    # 30 min for 5,000 photos), see benchmarks/results/adaptation.md
    epochs: int = 1
    batch: int = 16  # gallery photos per step (each with its pseudo-sketch, two views of each)
    lr: float = 3.5e-5  # Adam; a trained model is only nudged
    weight_decay: float = 5e-4
    momentum: float = 0.99  # of the EMA teacher
    distillation_weight: float = 1.0
    alignment_weight: float = 1.0
    reverse_weight: float = 0.2  # photo -> sketch alignment relative to sketch -> photo (asymmetry)
    freeze_sketch_statistics: bool = True  # see Adaptation._train_mode
    # the photo encoder's too: on PKU split 1 the only variant measured that was not worse than the base
    # model (one split: benchmarks/results/adaptation.md)
    freeze_photo_statistics: bool = True
    probe: int = 100  # photos the collapse guard measures on
    seed: int = 0
    threads: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Gallery:
    data_dir: str
    paths: tuple[str, ...]
    photo_count: int
    photos_sha256: str  # sha256 of the sorted photo sha256s, one per line


@dataclass(frozen=True)
class AdaptProgress:
    epoch: int  # 1-based epoch in progress
    epochs: int
    step: int  # steps done in this epoch
    steps: int  # steps per epoch
    losses: dict[str, float] = field(default_factory=dict)
    guard: dict | None = None  # the collapse guard's figures after an epoch
    message: str = ""  # the stage, when it is not a training step
    done: int = 0  # steps done in the whole run, resumed ones included
    total: int = 0  # steps of the whole run
    seconds_left: float | None = None  # None until a step has been timed


def seconds_left(
    step_seconds: list[float], steps_left: int, measure_seconds: float | None, measures_left: int
) -> float | None:
    """Time left, from the steps timed so far in this run: the median of the recent ones (the first,
    which starts the data thread, and a busy moment of the machine weigh little) times the steps
    left, plus a collapse-guard measurement at the end of each epoch left, timed when one was made."""
    if steps_left > 0 and not step_seconds:
        return None
    per_step = float(np.median(step_seconds[-RECENT_STEPS:])) if step_seconds else 0.0
    return steps_left * per_step + measures_left * (measure_seconds or 0.0)


@dataclass(frozen=True)
class AdaptResult:
    out: Path
    manifest: Manifest
    resumed_at: tuple[int, int] | None  # (epoch, step) the run resumed at, 1-based epoch; None: afresh
    seconds: float
    guard: list[dict]


# ------------------------------------------------------------------------------------ inputs


def read_gallery(data_dir: Path) -> Gallery:
    """The photos catalogued in ``data_dir`` (those found at the last import)."""
    data_dir = Path(data_dir)
    if not (data_dir / Catalogue.FILE_NAME).is_file():
        raise SketchSearchError(f"{data_dir}: no gallery here (no {Catalogue.FILE_NAME}; import photos first)")
    catalogue = Catalogue(data_dir)
    try:
        photos = catalogue.present_photos()
    finally:
        catalogue.close()
    if len(photos) < MIN_PHOTOS:
        raise SketchSearchError(
            f"{data_dir}: {len(photos)} photo(s) catalogued; adaptation needs at least {MIN_PHOTOS}"
        )
    digest = hashlib.sha256("\n".join(sorted(sha for _, _, sha in photos)).encode()).hexdigest()
    return Gallery(str(data_dir), tuple(path for _, path, _ in photos), len(photos), digest)


def read_sketches(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise SketchSearchError(f"{folder}: not a folder of sketches")
    return [str(p) for p in iter_image_files(folder)]


def default_work_dir(out: Path) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}.adapt"


def check_work_dir(work: Path) -> None:
    """Refuse a work folder that is not new, empty, or an adaptation's state: a run starting afresh
    clears its work folder, and a mistyped ``--work`` (a case folder) must never lose a file."""
    work = Path(work)
    if not work.exists() and not work.is_symlink():
        return
    if not work.is_dir():
        raise SketchSearchError(f"{work}: not a folder; give --work a new or empty folder (nothing was deleted)")
    try:
        entries = sorted(work.iterdir())
    except OSError as exc:
        raise SketchSearchError(f"{work}: cannot read the work folder ({exc.strerror or exc})") from None
    if not entries:
        return
    foreign = [p.name for p in entries if not is_state_file(p.name) or p.is_symlink() or not p.is_file()]
    reason = ""
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        reason = f"it holds {shown}"
    elif not _holds_identity(work / SETTINGS_FILE):
        reason = f"no readable {SETTINGS_FILE} of an adaptation"
    if reason:
        raise SketchSearchError(
            f"{work}: not an adaptation state folder ({reason}); give --work a new or empty folder "
            "(nothing was deleted)"
        )


def _holds_identity(path: Path) -> bool:
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(identity, dict) and IDENTITY_KEYS <= identity.keys()


def is_state_file(name: str) -> bool:
    """One of an adaptation's files, or what a run killed while writing one of them left beside it
    (the temporary file of an atomic write, or that of an earlier version: ``state.pt.tmp``)."""
    return name in STATE_FILES or (name.endswith(".tmp") and name.startswith(STATE_FILES))


def remove_state(work: Path) -> None:
    """Delete an adaptation's state: its own files, then the folder if nothing else is left in it."""
    try:
        names = [p.name for p in work.iterdir() if is_state_file(p.name)]
    except OSError:
        return  # no work folder
    for name in names:
        try:
            (work / name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: not removed (%s)", work / name, exc.strerror or exc)
    try:
        work.rmdir()
    except OSError:
        pass  # gone already, or holds something the adaptation did not write: kept


# -------------------------------------------------------------------------------------- data


class AdaptImages(Dataset):
    """Index -> two augmented views of a gallery photo and two of its pseudo-sketch (``kind`` photo),
    or two views of a user sketch (``kind`` sketch). A photo that cannot be read is replaced by
    the next readable one (its reason logged), so one bad file never stops the run."""

    def __init__(self, paths: list[str], kind: Modality, configs: dict[Modality, PreprocessConfig], seed: int):
        self.paths, self.kind, self.configs, self.seed = paths, kind, configs, seed
        self.augmentation = Augmentation()
        self.epoch = 0
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def _views(self, image: np.ndarray, modality: Modality, rng: np.random.Generator) -> list[torch.Tensor]:
        config = self.configs[modality]
        image = prepare(image, config)
        return [
            torch.from_numpy(normalise(augment_uint8(image, config, modality, self.augmentation, rng), config))
            for _ in range(2)
        ]

    def _load(self, index: int) -> tuple[int, np.ndarray]:
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self.bad:
                continue
            try:
                return i, load_rgb(self.paths[i])
            except ImageLoadError as exc:
                log.warning("skipped %s", exc)
                self.bad.add(i)
        raise SketchSearchError("none of the gallery's photos can be read")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index, image = self._load(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.kind is Modality.SKETCH:
            a, b = self._views(image, Modality.SKETCH, rng)
            return {"sketch_a": a, "sketch_b": b}
        photo_a, photo_b = self._views(image, Modality.PHOTO, rng)
        sketch_a, sketch_b = self._views(pencil_sketch(image), Modality.SKETCH, rng)
        return {"photo_a": photo_a, "photo_b": photo_b, "sketch_a": sketch_a, "sketch_b": sketch_b}

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        items = [self[i] for i in indices]
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def epoch_batches(count: int, batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's shuffled batches (seeded by epoch, so a resumed epoch sees the same order); a last
    batch of fewer than 2 photos is dropped (it has no neighbours)."""
    order = np.random.default_rng([seed, epoch]).permutation(count).tolist()
    batches = [order[i : i + batch] for i in range(0, count, batch)]
    return [b for b in batches if len(b) >= 2]


def prefetched(items: Iterable, depth: int = 1) -> Iterator:
    """``items`` produced on a background thread, at most ``depth`` ahead of the caller: the next
    batch is decoded, drawn and augmented (OpenCV and NumPy, which release the GIL) while the network
    trains on this one. The order is unchanged, and every random draw is seeded by (seed, epoch,
    index), so the batches are those a loop on the main thread would make. An error raised while
    producing is raised here; closing the generator stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put((end, exc))

    thread = threading.Thread(target=produce, name="adapt-data", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------------- the model


def adapted_manifest(
    base: Manifest, gallery: Gallery, sketches: list[str], settings: AdaptSettings, provenance: dict
) -> Manifest:
    terms = "; ".join(t for t in (base.data_terms, f"adapted on the gallery in {gallery.data_dir}: its owner's") if t)
    return replace(
        base,
        name=f"{base.name}-adapted-{gallery.photos_sha256[:8]}",
        provenance={
            "kind": "adapted to a gallery (AMA, unsupervised: no label of any kind)",
            "base_model": {"name": base.name, "weights_sha256": base.weights_sha256},
            "gallery": {
                "data_dir": gallery.data_dir,
                "photos": gallery.photo_count,
                "photos_sha256": gallery.photos_sha256,
                "hash": "sha256 of the sorted photo sha256s, one per line",
            },
            "sketches": len(sketches),
            "settings": settings.to_json(),
            "attribute_head": "the base model's (not retrained by the adaptation)",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **provenance,
        },
        data_terms=terms,
        weights_sha256="",
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_model_atomically(
    network: SketchPhotoNet, manifest: Manifest, out: Path, stop: Callable[[], None] = lambda: None
) -> Manifest:
    """Write the checkpoint into a hidden folder beside ``out``, flush it, then rename it to ``out``.
    ``stop`` raises to cancel; it is called between the parts of the write, and a cancelled write
    leaves nothing."""
    out = Path(out).absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        save_checkpoint(network, manifest, tmp)
        stop()
        export_onnx(tmp)  # the adapted model runs on ONNX Runtime in the app, as the bundled one does
        written = read_manifest(tmp)
        for item in tmp.iterdir():
            _fsync(item)
        _fsync(tmp)
        stop()
        os.rename(tmp, out)
        _fsync(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


def _io_reason(exc: Exception) -> str:
    """The operating system's words from a wrapped I/O error ("No space left on device")."""
    text = str(exc)
    return text.split("I/O error: ")[-1].split(" (os error")[0] if "I/O error: " in text else text


def remove_partial_models(out: Path) -> None:
    """Hidden temporary folders left by a run killed while writing ``out``."""
    out = Path(out).absolute()
    for leftover in out.parent.glob(f".{out.name}.*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)


# ------------------------------------------------------------------------------------- the run


class Adaptation:
    def __init__(
        self,
        model_dir: Path,
        data_dir: Path,
        out: Path,
        *,
        sketches: Path | None = None,
        settings: AdaptSettings = AdaptSettings(),
        work_dir: Path | None = None,
        device: str | None = "cpu",
        command: str = "",
    ):
        self.out = Path(out).absolute()
        if self.out.exists():
            raise SketchSearchError(f"{self.out}: already exists; choose another --out (a model is never overwritten)")
        if not self.out.parent.is_dir():
            raise SketchSearchError(f"{self.out.parent}: no such folder")
        self.settings = settings
        self.command = command
        self.work = Path(work_dir) if work_dir else default_work_dir(self.out)
        check_work_dir(self.work)  # before anything is loaded: a wrong folder fails at once
        self.network, self.base = load_checkpoint(Path(model_dir))
        self.gallery = read_gallery(Path(data_dir))
        self.sketches = read_sketches(sketches)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = choose_device(device)
        self.network.to(self.device).train()
        self.teacher = EmaTeacher(self.network, settings.momentum)
        self.optimizer = torch.optim.Adam(
            [p for p in self.network.parameters() if p.requires_grad],
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            fused=True,  # one kernel over all parameters (CPU and CUDA): Adam's arithmetic, far fewer calls
        )
        self.distillation = SelfDistillationLoss()
        self.alignment = MutualAlignmentLoss(reverse_weight=settings.reverse_weight)
        self.photos = AdaptImages(list(self.gallery.paths), Modality.PHOTO, self.base.preprocess, settings.seed)
        self.user_sketches = AdaptImages(self.sketches, Modality.SKETCH, self.base.preprocess, settings.seed + 1)
        self.steps = len(epoch_batches(len(self.photos), settings.batch, settings.seed, 0))
        rng = np.random.default_rng(settings.seed)
        probe = rng.permutation(self.gallery.photo_count)[: settings.probe]
        self.probe_paths = [self.gallery.paths[i] for i in sorted(probe)]
        self.epoch, self.step, self.guard_log = 0, 0, []
        self.base_figures: GuardFigures | None = None
        self.started = False  # the work folder holds this run's identity (a state resumed, or afresh)
        self.resumed = False
        self.saved_at: tuple[int, int] | None = None  # (epoch, step) of the state on disk
        self.step_seconds: list[float] = []  # this session's steps, for the time left
        self.measure_seconds: float | None = None  # the collapse guard's last measurement

    # -- identity of a run: a rerun resumes only the same adaptation ---------------------------
    def identity(self) -> dict:
        return {
            "base_weights_sha256": self.base.weights_sha256,
            "gallery_photos_sha256": self.gallery.photos_sha256,
            "sketches": hashlib.sha256("\n".join(self.sketches).encode()).hexdigest(),
            "settings": {k: v for k, v in self.settings.to_json().items() if k != "threads"},  # speed only
            "out": str(self.out),
        }

    def save_state(self) -> None:
        """The state whole or not at all (a temporary file renamed over it), readable by the user
        alone: it holds what the gallery taught the network."""
        make_private_folder(self.work, warn=False)
        state = {
            "network": self.network.state_dict(),
            "teacher": self.teacher.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "guard_log": json.dumps(self.guard_log),
            "base_figures": json.dumps(self.base_figures.to_json() if self.base_figures else None),
            "torch_rng": torch.get_rng_state(),
        }
        try:
            with atomic_private_file(self.work / STATE_FILE) as handle:
                torch.save(state, handle)
        except (OSError, RuntimeError) as exc:
            raise SketchSearchError(f"{self.work}: cannot save the training state ({exc})") from None
        self.saved_at = (self.epoch, self.step)

    def load_state(self) -> bool:
        settings_path, state_path = self.work / SETTINGS_FILE, self.work / STATE_FILE
        if not (settings_path.is_file() and state_path.is_file()):
            return False
        try:
            same = json.loads(settings_path.read_text(encoding="utf-8")) == self.identity()
            state = torch.load(state_path, map_location=self.device, weights_only=True) if same else None
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            log.warning("%s: unreadable training state (%s); starting afresh", state_path, exc)
            return False
        if state is None:
            log.warning("%s holds another adaptation (other model, gallery or settings); starting afresh", self.work)
            return False
        self.network.load_state_dict(state["network"])
        self.teacher.network.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.saved_at = (self.epoch, self.step)
        self.guard_log = json.loads(state["guard_log"])
        base = json.loads(state["base_figures"])
        self.base_figures = GuardFigures(**base) if base else None
        torch.set_rng_state(state["torch_rng"].cpu())
        return True

    def _start_afresh(self) -> None:
        remove_state(self.work)
        make_private_folder(self.work, warn=False)
        with atomic_private_file(self.work / SETTINGS_FILE) as handle:
            handle.write((json.dumps(self.identity(), indent=2) + "\n").encode("utf-8"))

    # -- guard -----------------------------------------------------------------------------------
    def guard_figures(self, network: SketchPhotoNet, stop: Callable[[], None] = lambda: None) -> GuardFigures:
        """The probe photos and their pseudo-sketches embedded as search embeds them, a chunk at a
        time; ``stop`` (which raises to cancel) is called between chunks."""
        started = time.monotonic()
        embedder = InferenceModel.from_network(network, self.base, self.device)
        photos, sketches = [], []
        for start in range(0, len(self.probe_paths), GUARD_CHUNK):
            stop()
            images = []
            for path in self.probe_paths[start : start + GUARD_CHUNK]:
                try:
                    images.append(load_rgb(path))
                except ImageLoadError:
                    continue
            photos.append(embedder.embed_images(images, Modality.PHOTO).embeddings)
            sketches.append(embedder.embed_images([pencil_sketch(i) for i in images], Modality.SKETCH).embeddings)
        stop()
        figures = measure(np.concatenate(photos), np.concatenate(sketches))
        self.measure_seconds = time.monotonic() - started
        return figures

    # -- cancel ------------------------------------------------------------------------------------
    def stop_if_cancelled(self, cancel: threading.Event | None, where: str) -> None:
        """At a cancel, keep what was trained as a whole state a rerun resumes from, or nothing when
        this run has trained nothing yet; then stop."""
        if cancel is None or not cancel.is_set():
            return
        if not self.started:
            raise AdaptationCancelled(f"adaptation cancelled {where}; nothing was changed")
        if not self.resumed and (self.epoch, self.step) == (0, 0):
            remove_state(self.work)
            raise AdaptationCancelled(f"adaptation cancelled {where}; nothing was trained yet, nothing kept")
        if self.saved_at != (self.epoch, self.step):
            self.save_state()
        raise AdaptationCancelled(f"adaptation cancelled {where}; run it again to resume")

    def _progress(self, epoch: int, step: int, steps: int, **fields) -> AdaptProgress:
        """A report for ``step`` steps done in ``epoch`` (0-based), with the run's count and time left."""
        epochs = self.settings.epochs
        done = min(epoch, epochs) * self.steps + step
        total = epochs * self.steps
        left = seconds_left(self.step_seconds, total - done, self.measure_seconds, epochs - epoch)
        return AdaptProgress(
            min(epoch + 1, epochs), epochs, step, steps, done=done, total=total, seconds_left=left, **fields
        )

    # -- training --------------------------------------------------------------------------------
    def _train_mode(self) -> None:
        """Train mode, but with the encoders' batch-norm statistics kept as they are unless asked:
        pseudo-sketches are not the investigators' drawings, and statistics gathered on them alone
        would shift every real query; on the one split measured, keeping the photo statistics too
        did best."""
        self.network.train()
        frozen = [self.network.sketch] if self.settings.freeze_sketch_statistics else []
        frozen += [self.network.photo] if self.settings.freeze_photo_statistics else []
        for encoder in frozen:
            for module in encoder.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def _user_sketch_batch(self, epoch: int, step: int) -> dict[str, torch.Tensor] | None:
        if not self.sketches:
            return None
        count = min(len(self.sketches), max(2, self.settings.batch // 2))
        rng = random.Random(f"{self.settings.seed}-{epoch}-{step}")
        return self.user_sketches.batch(rng.sample(range(len(self.sketches)), count))

    def train_step(self, batch: dict[str, torch.Tensor], extra: dict[str, torch.Tensor] | None) -> dict[str, float]:
        s = self.settings
        sketch_a, sketch_b = batch["sketch_a"], batch["sketch_b"]
        if extra is not None:
            sketch_a, sketch_b = torch.cat([sketch_a, extra["sketch_a"]]), torch.cat([sketch_b, extra["sketch_b"]])
        dev = self.device
        photo = self.network(batch["photo_a"].to(dev), Modality.PHOTO).embedding
        sketch = self.network(sketch_a.to(dev), Modality.SKETCH).embedding
        with torch.no_grad():
            teacher_photo = self.teacher.network(batch["photo_b"].to(dev), Modality.PHOTO).embedding
            teacher_sketch = self.teacher.network(sketch_b.to(dev), Modality.SKETCH).embedding
        distillation = self.distillation(photo, teacher_photo) + self.distillation(sketch, teacher_sketch)
        alignment = self.alignment(photo, sketch)
        total = s.distillation_weight * distillation + s.alignment_weight * alignment
        if not torch.isfinite(total):
            raise AdaptationCollapsed(
                f"adaptation stopped at epoch {self.epoch + 1}: the loss is no longer a finite number; "
                "no model was written (try a lower --lr)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.teacher.update(self.network)
        return {
            "distillation": float(distillation.detach()),
            "alignment": float(alignment.detach()),
            "loss": float(total.detach()),
        }

    def _log(self, row: dict) -> None:
        """One row an epoch, the file rewritten whole (it is small) so that it is never half a row."""
        path = self.work / LOG_FILE
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
        if not old:
            writer.writeheader()
        writer.writerow({k: f"{v:.5f}" if isinstance(v, float) else v for k, v in row.items()})
        write_private_file(path, (old + text.getvalue()).encode("utf-8"), "training log")

    def _collapsed(self, epoch: int, reason: str) -> AdaptationCollapsed:
        remove_state(self.work)  # a rerun must not resume a collapsed network
        return AdaptationCollapsed(
            f"adaptation stopped after epoch {epoch}: {reason}; the embedding collapsed and no model was written "
            "(try a lower --lr)"
        )

    def _epochs(self, report: Callable[[AdaptProgress], None], cancel: threading.Event | None) -> None:
        s = self.settings
        if self.base_figures is None:
            report(self._progress(self.epoch, self.step, self.steps, message="Measuring the base model…"))
            self.base_figures = self.guard_figures(
                self.teacher.network, lambda: self.stop_if_cancelled(cancel, "while measuring the base model")
            )
            self.guard_log = [{"epoch": 0, **self.base_figures.to_json()}]
            log.info(
                "base model: spread %.4f, neighbour agreement %.3f",
                self.base_figures.spread,
                self.base_figures.agreement,
            )
        guard = CollapseGuard(self.base_figures)
        while self.epoch < s.epochs:
            epoch = self.epoch
            self.photos.epoch = self.user_sketches.epoch = epoch
            batches = epoch_batches(len(self.photos), s.batch, s.seed, epoch)
            sums: dict[str, float] = {}
            trained = 0
            epoch_started = time.monotonic()
            self._train_mode()
            inputs = (
                (self.photos.batch(batches[i]), self._user_sketch_batch(epoch, i))
                for i in range(self.step, len(batches))
            )
            with closing(prefetched(inputs)) as loaded:
                step_started = time.monotonic()
                for step, (batch, extra) in enumerate(loaded, start=self.step):
                    self.stop_if_cancelled(cancel, f"at epoch {epoch + 1}, step {step}")
                    losses = self.train_step(batch, extra)
                    for name, value in losses.items():
                        sums[name] = sums.get(name, 0.0) + value
                    trained += 1
                    self.step = step + 1
                    if self.step % STATE_EVERY == 0:  # a killed run loses at most this many steps
                        self.save_state()
                    now = time.monotonic()
                    self.step_seconds.append(now - step_started)
                    step_started = now
                    report(self._progress(epoch, self.step, len(batches), losses=losses))
            report(
                self._progress(epoch, self.step, len(batches), message=f"Measuring the model after epoch {epoch + 1}…")
            )
            measuring = partial(self.stop_if_cancelled, cancel, f"while measuring epoch {epoch + 1}")
            figures = self.guard_figures(self.teacher.network, measuring)
            self._train_mode()
            row = {
                "epoch": epoch + 1,
                "seconds": time.monotonic() - epoch_started,
                "steps": trained,
                **{name: value / max(1, trained) for name, value in sums.items()},
                "spread": figures.spread,
                "neighbour_agreement": figures.agreement,
            }
            self.guard_log.append({"epoch": epoch + 1, **figures.to_json()})
            self._log(row)
            log.info(
                "epoch %d/%d: %s",
                epoch + 1,
                s.epochs,
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
            )
            report(self._progress(epoch, len(batches), len(batches), guard=figures.to_json()))
            reason = guard.problem(figures)
            if reason:
                raise self._collapsed(epoch + 1, reason)
            self.epoch, self.step = epoch + 1, 0
            self.save_state()

    def run(
        self,
        progress: Callable[[AdaptProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> AdaptResult:
        started = time.monotonic()
        report = progress or (lambda p: None)
        remove_partial_models(self.out)
        self.stop_if_cancelled(cancel, "before it started")
        self.resumed = self.load_state()
        resumed_at = (self.epoch + 1, self.step) if self.resumed else None
        if self.resumed:
            log.info("resumed from %s at epoch %d, step %d", self.work, self.epoch + 1, self.step)
            at = self._progress(self.epoch, self.step, self.steps)
            report(replace(at, message=f"Resuming after {at.done} of {at.total} steps…"))
        else:
            self._start_afresh()
        self.started = True
        # the same sums in less time: convolutions and batch norms folded, freed feature maps reused
        with folded_batch_norms(self.network, self.teacher.network), reused_heap():
            self._epochs(report, cancel)
        s = self.settings
        manifest = adapted_manifest(
            self.base,
            self.gallery,
            self.sketches,
            self.settings,
            {"command": self.command, "guard": self.guard_log, "torch": torch.__version__, "device": str(self.device)},
        )
        writing = self._progress(s.epochs, 0, self.steps, message="Writing the model…")
        report(replace(writing, seconds_left=None))  # no write timed yet to estimate it from
        try:
            self.stop_if_cancelled(cancel, "before writing the model")
            written = write_model_atomically(
                self.teacher.network.eval(),
                manifest,
                self.out,
                lambda: self.stop_if_cancelled(cancel, "while writing the model"),
            )
        except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _io_reason(exc)
            raise SketchSearchError(
                f"{self.out}: cannot write the model ({reason}); nothing was written, "
                "run the same command again once there is room"
            ) from None
        remove_state(self.work)
        return AdaptResult(self.out, written, resumed_at, time.monotonic() - started, self.guard_log)


def adapt(
    model_dir: Path,
    data_dir: Path,
    out: Path,
    *,
    sketches: Path | None = None,
    settings: AdaptSettings = AdaptSettings(),
    work_dir: Path | None = None,
    device: str | None = "cpu",
    command: str = "",
    progress: Callable[[AdaptProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> AdaptResult:
    """Adapt ``model_dir`` to the gallery in ``data_dir``; write the new model to ``out``. ``cancel``
    is looked at between the stages and within each (every step, every chunk of a measurement, the
    parts of the write): a cancelled run keeps a whole state to resume from, or nothing."""
    if cancel is not None and cancel.is_set():
        raise AdaptationCancelled("adaptation cancelled before it started; nothing was changed")
    run = Adaptation(
        model_dir,
        data_dir,
        out,
        sketches=sketches,
        settings=settings,
        work_dir=work_dir,
        device=device,
        command=command,
    )
    return run.run(progress, cancel)
