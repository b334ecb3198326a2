"""Re-ID pre-training (``sketchsearch-train pretrain``): the network's encoders learn to tell
pedestrians apart on labelled re-ID photos before ``fit --init`` fine-tunes them on sketches.

The literature's strongest sketch re-ID models start from a backbone that already knows people;
ImageNet weights do not. The source is a re-ID photo folder (the shared CUHK03: ids 0000-0742
only, the rest are large-gallery distractors and are refused), trained with label-smoothed
identity cross-entropy and the batch-hard triplet among each batch's photos; with
``pseudo_sketches`` every photo is also drawn as a pencil sketch and the MATHM triplet aligns the
sketch encoder with the photo encoder, so each person gives sketch/photo pairs. A few people are
held out, and photo -> photo re-ID across cameras on them picks the epoch kept.

Outputs under ``config.out``: ``config.json``, ``state.pt`` (this run's own resumable state,
saved atomically every few steps and on SIGTERM), ``log.csv`` (one row per epoch), ``best/``
(the checkpoint of the best validation epoch so far) and, when the run is done, ``model/``: that
checkpoint with its whole provenance, what ``fit --init`` takes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.common.errors import SketchSearchError
from core.common.private_files import atomic_private_file, make_private_folder
from core.model.attributes import PERSON_ATTRIBUTES
from core.model.checkpoint import Manifest, load_checkpoint, save_checkpoint, write_json_atomically
from core.model.inference import InferenceModel, choose_device
from core.model.network import Modality, SketchPhotoNet, load_pretrained_backbones
from core.model.preprocess import PreprocessConfig
from training import data as datasets
from training.config import ConfigError, PretrainConfig
from training.data import DataError, ImageRecord
from training.dataset import Augmentation, TrainingImages
from training.distractors import check_no_distractors, source_id_range
from training.engine import forward_mixed, git_commit, lr_factor, seed_everything, selection_score
from training.evaluate import cross_camera_figures, embed_records
from training.losses import BatchHardTripletLoss, LabelSmoothingCrossEntropy, ModalityAwareTripletLoss
from training.sampler import IdentityBatchSampler

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
STATE_EVERY = 20  # steps between saves of the state within an epoch: a killed run loses at most these
LOSSES = ("identity", "triplet", "mathm")
KIND = "re-ID pre-training: encoder weights for fit --init, not a sketch search model"


class PretrainStopped(SketchSearchError):
    """A signal stopped the run; its state is saved and the same command resumes it."""


@dataclass
class PretrainData:
    train: list[ImageRecord]  # the training people's photos
    validation: list[ImageRecord]  # the held-out people's photos
    id_range: tuple[int, int] | None  # the ids the folder was read with


def hold_out(records: list[ImageRecord], count: int, seed: int) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Carve ``count`` people (seeded) seen by two cameras or more out of ``records``: (rest, held out)."""
    if count == 0:
        return list(records), []
    cameras: dict[tuple[str, str], set] = {}
    for record in records:
        cameras.setdefault(record.key, set()).add(record.camera)
    pool = sorted(key for key, seen in cameras.items() if len(seen) >= 2)
    if count > len(pool) or len(cameras) - count < 2:
        raise DataError(
            f"cannot hold out {count} of {len(cameras)} people for validation ({len(pool)} seen by two cameras)"
        )
    held = set(random.Random(seed).sample(pool, count))
    return [r for r in records if r.key not in held], [r for r in records if r.key in held]


def load_pretrain_data(config: PretrainConfig) -> PretrainData:
    """The source's photos, the large-gallery distractors refused, split into training and
    validation people."""
    root = Path(config.source_root)
    id_range = source_id_range(root, config.source_ids)
    records = datasets.reid_folder(root, id_range)
    check_no_distractors(records, "the pre-training photos")
    records = datasets.limit_identities(records, config.limit_identities, config.seed)
    train, validation = hold_out(records, config.validation_identities, config.seed)
    return PretrainData(train, validation, id_range)


def build_pretrain_network(config: PretrainConfig) -> SketchPhotoNet:
    network = SketchPhotoNet(
        config.backbone,
        PERSON_ATTRIBUTES,
        config.embedding_dim,
        shared_backbone=config.share_backbone,
        parts=config.parts,
        part_columns=config.part_columns,
        feature_stride=config.feature_stride,
    )
    load_pretrained_backbones(network, Path(config.backbone_weights) if config.backbone_weights else None)
    return network


def _read_state(path: Path, device: torch.device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise SketchSearchError(f"{path}: unreadable training state ({exc}); move it away to start afresh") from None


class Pretrainer:
    def __init__(self, config: PretrainConfig, command: str | None = None):
        config.check()
        self.config = config
        self.command = command or "sketchsearch-train " + shlex.join(sys.argv[1:])
        self.out = Path(config.out)
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        self.device = choose_device(config.device)
        self.amp = self.device.type == "cuda"
        self.workers = config.workers if config.workers is not None else (8 if self.device.type == "cuda" else 0)

        self.data = load_pretrain_data(config)
        self.configs = {
            Modality.PHOTO: PreprocessConfig(height=config.height, width=config.width),
            Modality.SKETCH: PreprocessConfig(
                height=config.height, width=config.width, greyscale=True, clean_sketch=config.clean_sketches
            ),
        }
        sketches = datasets.pseudo_sketches(self.data.train) if config.pseudo_sketches else []
        records = self.data.train + sketches
        self.people = datasets.identities(self.data.train)
        label_of = {key: i for i, key in enumerate(self.people)}
        labels = [label_of[r.key] for r in records]
        # photos alone are drawn as the sampler's source batches (K photos a person); with pseudo-
        # sketches every person has both modalities and gives half sketches, half photos
        alone = [not config.pseudo_sketches] * len(records)
        self.dataset = TrainingImages(
            records,
            labels,
            self.configs,
            PERSON_ATTRIBUTES,
            source=alone,
            seed=config.seed,
            augmentation=Augmentation(crop_scale=(config.crop_min, 1.0), pad=config.pad),
        )
        self.sampler = IdentityBatchSampler(
            records,
            labels,
            p=config.p,
            k=config.k,
            source=alone,
            source_share=0.0 if config.pseudo_sketches else 1.0,
            seed=config.seed,
            batches=config.steps_per_epoch,
        )
        self.network = build_pretrain_network(config).to(self.device)
        self.classifier = nn.Linear(self.network.embedding_dim, len(self.people), bias=False).to(self.device)
        nn.init.normal_(self.classifier.weight, std=0.001)
        self.loss_fns = {
            "identity": LabelSmoothingCrossEntropy(config.label_smoothing),
            "triplet": BatchHardTripletLoss(config.margin),
            "mathm": ModalityAwareTripletLoss(config.margin),
        }
        head = {id(p) for p in self.network.attributes.parameters()}  # no attribute labels here
        params = [p for p in self.network.parameters() if p.requires_grad and id(p) not in head]
        self.optimizer = torch.optim.Adam(
            [*params, *self.classifier.parameters()], lr=config.lr, weight_decay=config.weight_decay
        )
        self.steps_per_epoch = len(self.sampler)
        total = self.steps_per_epoch * config.epochs
        warmup = self.steps_per_epoch * min(config.warmup_epochs, config.epochs)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(step, warmup, total))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0  # the epoch under way (0-based); the ones before it are complete
        self.step_in_epoch = 0
        self.sums: dict[str, float] = {}  # the epoch's loss sums so far
        self.epoch_seconds = 0.0  # the epoch's training time so far (over stops and resumes)
        self.best_score: tuple[float, float] = (-1.0, float("-inf"))
        self.best_epoch = 0
        self.history: list[dict] = []  # one row per completed epoch

    # -- state ------------------------------------------------------------------------------------

    def save_state(self) -> None:
        state = {
            "network": self.network.state_dict(),
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "progress": json.dumps(
                {
                    "sums": self.sums,
                    "epoch_seconds": self.epoch_seconds,
                    "best_score": list(self.best_score),
                    "best_epoch": self.best_epoch,
                    "history": self.history,
                }
            ),
            "torch_rng": torch.get_rng_state(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        try:
            with atomic_private_file(self.out / STATE_FILE) as handle:
                handle.write(buffer.getbuffer())
        except OSError as exc:
            raise SketchSearchError(f"{self.out / STATE_FILE}: cannot save the training state ({exc})") from None

    def _check_same_run(self) -> None:
        """A folder holds one run: a rerun with other settings would resume someone else's weights."""
        path = self.out / CONFIG_FILE
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SketchSearchError(f"{path}: unreadable ({exc}); move the folder away to start afresh") from None
        ours = self.config.identity()
        differ = self.config.differences(saved)
        if differ:
            shown = ", ".join(f"{k} {saved.get(k)!r} there, {ours.get(k)!r} here" for k in differ[:4])
            raise ConfigError(
                f"{self.out} holds a pre-training with other settings ({shown}); "
                "give another --out, or the same settings to resume it"
            )

    def load_state(self) -> bool:
        path = self.out / STATE_FILE
        if not path.is_file():
            return False
        self._check_same_run()
        state = _read_state(path, self.device)
        self.network.load_state_dict(state["network"])
        self.classifier.load_state_dict(state["classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        progress = json.loads(state["progress"])
        self.sums, self.epoch_seconds = progress["sums"], float(progress["epoch_seconds"])
        self.best_score, self.best_epoch = tuple(progress["best_score"]), int(progress["best_epoch"])
        self.history = progress["history"]
        torch.set_rng_state(state["torch_rng"].cpu())
        log.info("resumed %s at epoch %d, step %d", self.out, self.epoch + 1, self.step_in_epoch)
        return True

    # -- checkpoints --------------------------------------------------------------------------------

    def _manifest(self, name: str, provenance: dict) -> Manifest:
        licence, terms = self.config.data_terms()
        network = self.network
        return Manifest(
            name=name,
            backbone=network.backbone_name,
            shared_backbone=network.shared_backbone,
            parts=network.parts,
            part_columns=network.part_columns,
            feature_stride=network.feature_stride,
            test_time_flip=self.config.test_time_flip,
            embedding_dim=network.embedding_dim,
            preprocess=dict(self.configs),
            attribute_schema=PERSON_ATTRIBUTES,
            attribute_head_trained=False,
            provenance=provenance,
            licence=licence,
            data_terms=terms,
        )

    def _name(self) -> str:
        return f"{self.config.backbone}-reid-pretrain-{Path(self.config.source_root).resolve().name}"

    def _provenance(self, **extra) -> dict:
        config, data = self.config, self.data
        sketch_encoder = (
            "trained on pseudo-sketches of the same photos (MATHM)"
            if config.pseudo_sketches
            else "a copy of the photo encoder (no sketches were seen)"
        )
        return {
            "kind": KIND,
            "purpose": "the start of sketchsearch-train fit --init; a training asset, not shipped",
            "command": self.command,
            "data": {
                "source": config.source,
                "source_root": str(config.source_root),
                "ids": "{:04d}-{:04d}".format(*data.id_range) if data.id_range else "all",
                "train_identities": [i for _, i in self.people],
                "validation_identities": [i for _, i in datasets.identities(data.validation)],
                "train_photos": len(data.train),
                "validation_photos": len(data.validation),
                "pseudo_sketches": len(data.train) if config.pseudo_sketches else 0,
                "excluded": "the large-gallery distractors (CUHK03 ids 0743-0842, all of CUHK01) are refused",
            },
            "losses": [n for n in LOSSES if getattr(config, f"w_{n}") and (n != "mathm" or config.pseudo_sketches)],
            "sketch_encoder": sketch_encoder,
            "seed": config.seed,
            "epochs": config.epochs,
            "git": git_commit(),
            "config": config.to_json(),
            "torch": torch.__version__,
            "device": str(self.device),
            **extra,
        }

    def _checkpoint_network(self) -> SketchPhotoNet:
        """The network as stored: without sketches the sketch encoder never learned, so it takes
        the photo encoder's weights (a re-ID start for both is better than ImageNet for one)."""
        if not self.config.pseudo_sketches:
            with torch.no_grad():
                self.network.sketch.load_state_dict(self.network.photo.state_dict())
        return self.network.eval()

    # -- training -----------------------------------------------------------------------------------

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        config = self.config
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device)
        modality = batch["modality"].to(self.device)
        feature, embedding = forward_mixed(self.network, images, modality)
        losses = {}
        if config.w_identity:
            losses["identity"] = self.loss_fns["identity"](self.classifier(embedding), labels)
        photos = modality == 0
        if config.w_triplet:
            losses["triplet"] = self.loss_fns["triplet"](feature[photos], labels[photos])
        if config.w_mathm and config.pseudo_sketches:
            losses["mathm"] = self.loss_fns["mathm"](feature, labels, modality)
        return losses

    def _batches(self) -> DataLoader:
        """The epoch's batches from the one it stopped at (the sampler and the augmentation are
        seeded by epoch, so a resumed epoch goes on exactly where it stopped)."""
        self.sampler.set_epoch(self.epoch)
        self.dataset.set_epoch(self.epoch)
        left = list(self.sampler)[self.step_in_epoch :]
        return DataLoader(self.dataset, batch_sampler=left, num_workers=self.workers)

    def train_epoch(self, cancel: threading.Event | None) -> None:
        """Train the rest of the current epoch; on ``cancel`` save the state and stop."""
        weights = {n: getattr(self.config, f"w_{n}") for n in LOSSES}
        self.network.train()
        self.classifier.train()
        batches = self._batches()
        if self.config.progress:
            from tqdm import tqdm

            batches = tqdm(
                batches,
                desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                initial=self.step_in_epoch,
                total=self.steps_per_epoch,
                leave=False,
            )
        started = time.monotonic()
        for batch in batches:
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                losses = self._losses(batch)
            total = sum(weights[name] * value.float() for name, value in losses.items())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step_in_epoch += 1
            for name, value in losses.items():
                self.sums[name] = self.sums.get(name, 0.0) + float(value.detach())
            self.sums["loss"] = self.sums.get("loss", 0.0) + float(total.detach())
            if self.config.progress:
                batches.set_postfix(loss=f"{float(total):.3f}")
            stop = cancel is not None and cancel.is_set()
            if stop or self.step_in_epoch % STATE_EVERY == 0:
                self.epoch_seconds += time.monotonic() - started
                started = time.monotonic()
                self.save_state()
                log.info(
                    "epoch %d step %d/%d: loss %.3f so far (%.1f s a step)",
                    self.epoch + 1,
                    self.step_in_epoch,
                    self.steps_per_epoch,
                    self.sums["loss"] / self.step_in_epoch,
                    self.epoch_seconds / self.step_in_epoch,
                )
            if stop:
                raise PretrainStopped(
                    f"pre-training stopped at epoch {self.epoch + 1}, step {self.step_in_epoch} of "
                    f"{self.steps_per_epoch} (state saved in {self.out}); run the same command again to resume"
                )
        self.epoch_seconds += time.monotonic() - started

    def validate(self) -> dict | None:
        """Photo -> photo re-ID across cameras among the held-out people."""
        if not self.data.validation:
            return None
        embedder = InferenceModel.from_network(self.network, self._manifest("validation", {}), self.device)
        embedded = embed_records(embedder, self.data.validation, Modality.PHOTO)
        ids = [r.identity for r in self.data.validation]
        return cross_camera_figures(embedded.embeddings, ids, [r.camera for r in self.data.validation])

    def _write_log(self) -> None:
        columns = ["epoch", "step", "lr", "seconds", "validation_seconds", "loss", *LOSSES]
        columns += ["val_R1", "val_R5", "val_mAP", "val_margin"]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in row.items()})
        with atomic_private_file(self.out / "log.csv") as handle:
            handle.write(text.getvalue().encode("utf-8"))

    def _end_epoch(self) -> None:
        epoch = self.epoch + 1
        steps = max(1, self.step_in_epoch)
        row: dict = {
            "epoch": epoch,
            "step": epoch * self.steps_per_epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": self.epoch_seconds,
            **{name: value / steps for name, value in self.sums.items()},
        }
        last = epoch == self.config.epochs
        if epoch % self.config.eval_every == 0 or last:
            started = time.monotonic()
            validation = self.validate()
            row["validation_seconds"] = time.monotonic() - started
            if validation:
                row.update({f"val_{k}": validation[k] for k in ("R1", "R5", "mAP", "margin")})
            score = selection_score(validation) if validation else (float(epoch), 0.0)
            if score > self.best_score:
                self.best_score, self.best_epoch = score, epoch
                provenance = self._provenance(selected_epoch=epoch, validation=validation, losses_at_epoch=row)
                save_checkpoint(self._checkpoint_network(), self._manifest(self._name(), provenance), self.out / "best")
        self.history.append(row)
        figures = ""
        if "val_R1" in row:
            figures = f"; validation R1 {row['val_R1']:.1f} mAP {row['val_mAP']:.1f} (best epoch {self.best_epoch})"
        losses = " ".join(f"{k} {row[k]:.3f}" for k in ("loss", *LOSSES) if k in row)
        log.info("epoch %d/%d: %s; %.0f s%s", epoch, self.config.epochs, losses, self.epoch_seconds, figures)
        self.epoch, self.step_in_epoch, self.sums, self.epoch_seconds = epoch, 0, {}, 0.0
        self.save_state()
        self._write_log()

    def run(self, cancel: threading.Event | None = None) -> Manifest:
        """Train (resuming this folder's state when there is one), then write ``out/model``."""
        make_private_folder(self.out, warn=False)
        if not self.load_state():
            write_json_atomically(self.out / CONFIG_FILE, self.config.identity())
        log.info(
            "pre-training on %d people (%d photos%s), %d held out; %d steps of %d a epoch",
            len(self.people),
            len(self.data.train),
            " and as many pseudo-sketches" if self.config.pseudo_sketches else "",
            len(datasets.identities(self.data.validation)),
            self.steps_per_epoch,
            self.config.p * self.config.k,
        )
        while self.epoch < self.config.epochs:
            self.train_epoch(cancel)
            self._end_epoch()
        return self.export()

    def export(self) -> Manifest:
        """``out/model``: the best validation epoch's weights with the run's whole provenance."""
        best = self.out / "best"
        if best.is_dir():
            network, chosen = load_checkpoint(best)
            self.network.load_state_dict(network.state_dict())
            validation, epoch = chosen.provenance.get("validation"), chosen.provenance.get("selected_epoch")
        else:
            validation, epoch = None, self.epoch
        last = self.history[-1] if self.history else {}
        provenance = self._provenance(
            selected_epoch=epoch,
            validation=validation,
            final_losses={k: last[k] for k in ("loss", *LOSSES) if k in last},
            history=self.history,
            seconds=sum(r.get("seconds", 0.0) + r.get("validation_seconds", 0.0) for r in self.history),
        )
        return save_checkpoint(self._checkpoint_network(), self._manifest(self._name(), provenance), self.out / "model")


def pretrain(config: PretrainConfig, command: str | None = None, cancel: threading.Event | None = None) -> Manifest:
    return Pretrainer(config, command).run(cancel)
