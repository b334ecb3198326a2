"""The fit loop: optional source pre-training, then sketch/photo co-training with identity,
metric, attribute and domain-adversarial losses; model selection on validation identities;
export of the selected network as a ``core`` checkpoint with its provenance and test metrics.

Outputs under ``config.out``: ``config.json``, ``log.csv`` (one row per epoch), ``state.pt``
(resumable training state), ``best/`` (the checkpoint chosen on validation) and ``model/`` (the
exported checkpoint with test metrics)."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from core.model.attributes import PERSON_ATTRIBUTES, AttributeSchema
from core.model.checkpoint import Manifest, load_checkpoint, read_manifest, save_checkpoint
from core.model.inference import InferenceModel, choose_device
from core.model.network import Modality, SketchPhotoNet, load_pretrained_backbones
from core.model.onnx_export import export_onnx
from core.model.osnet import OSNet, load_osnet
from core.model.preprocess import PreprocessConfig
from training import data as datasets
from training.config import FitConfig, LossWeights
from training.data import ImageRecord, Split
from training.dataset import SOURCE_PHOTO, Augmentation, TrainingImages
from training.distractors import check_no_distractors, source_id_range
from training.evaluate import evaluate_records, headline
from training.losses import (
    AttributeConsistencyLoss,
    AttributeEntropyLoss,
    AttributeLoss,
    CrossModalTripletLoss,
    DomainAdversarialLoss,
    DomainClassifier,
    LabelSmoothingCrossEntropy,
    ModalityAwareTripletLoss,
    SimilarityDistillationLoss,
    dann_strength,
)
from training.sampler import IdentityBatchSampler
from training.warm_start import warm_start

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
STATE_FILE = "state.pt"


# ------------------------------------------------------------------------------------------ data


@dataclass
class FitData:
    train: list[ImageRecord]
    validation: list[ImageRecord]
    test: list[ImageRecord]
    source: list[ImageRecord]
    split_name: str


def _strip_attributes(records: list[ImageRecord]) -> list[ImageRecord]:
    return [dataclasses.replace(r, attributes=None) for r in records]


def load_target(config: FitConfig, schema: AttributeSchema) -> Split:
    root = Path(config.root)
    if config.dataset == "pku":
        return datasets.pku_sketch(root, config.split, schema)
    records = datasets.cufs(root, schema) if config.dataset == "cufs" else datasets.paired_folder(root, schema)
    name = f"{config.dataset}-seed{config.seed}"
    return datasets.paired_split(records, config.test_identities, config.seed, name=name)


def load_source(config: FitConfig, schema: AttributeSchema) -> list[ImageRecord]:
    if config.source is None:
        return []
    root = Path(config.source_root)
    if config.source == "market1501":
        records = datasets.market1501(root, Path(config.source_mat) if config.source_mat else None, "train", schema)
    elif config.source == "cufs":
        records = datasets.cufs(root, schema)
    elif config.source == "reid":
        records = datasets.reid_folder(root, reid_source_ids(config))
    else:
        records = datasets.paired_folder(root, schema)
    return datasets.limit_identities(records, config.source_limit_identities, config.seed)


def reid_source_ids(config: FitConfig) -> tuple[int, int] | None:
    """The ids a re-ID source keeps: ``--source-ids``, else the shared set's default (CUHK03:
    0000-0742, the ids that are not large-gallery distractors), else all."""
    kept = source_id_range(Path(config.source_root), config.source_ids)
    if kept and not config.source_ids:
        log.info("source %s: ids %04d-%04d (the others are large-gallery distractors)", config.source_root, *kept)
    return kept


def prepare_data(config: FitConfig, schema: AttributeSchema = PERSON_ATTRIBUTES) -> FitData:
    """Target train/validation/test records and source records. Test identities come only from the
    split's test side; validation identities are carved (seeded) out of the training identities."""
    split = load_target(config, schema)
    train, test = split.train, split.test
    if config.limit_identities:
        train = datasets.limit_identities(train, config.limit_identities, config.seed)
        test = datasets.limit_identities(test, config.limit_identities, config.seed)
    train, validation = datasets.split_identities(train, config.validation_identities, config.seed)
    if not config.target_attributes:
        train, validation = _strip_attributes(train), _strip_attributes(validation)
    source = load_source(config, schema)
    check_no_distractors(source + train + validation)
    train_keys, test_keys = set(datasets.identities(train + validation)), set(datasets.identities(test))
    if train_keys & test_keys:
        raise datasets.DataError(f"test identities in the training data: {sorted(train_keys & test_keys)[:5]}")
    return FitData(train, validation, test, source, split.name)


# ---------------------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit() -> dict:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def forward_mixed(network: SketchPhotoNet, images: torch.Tensor, modality: torch.Tensor):
    """Run photos through the photo encoder and sketches through the sketch encoder; return
    (feature, embedding) rows in the batch's order."""
    features, embeddings, order = [], [], []
    for value, name in ((0, Modality.PHOTO), (1, Modality.SKETCH)):
        index = torch.nonzero(modality == value).flatten()
        if index.numel():
            out = network(images[index], name)
            features.append(out.feature)
            embeddings.append(out.embedding)
            order.append(index)
    inverse = torch.empty_like(modality)
    inverse[torch.cat(order)] = torch.arange(len(modality), device=modality.device)
    return torch.cat(features)[inverse], torch.cat(embeddings)[inverse]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up from 1 % then cosine decay to 1 % of the base rate."""
    if warmup and step < warmup:
        return 0.01 + 0.99 * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def attribute_log_priors(records: list[ImageRecord], schema: AttributeSchema, smoothing: float = 1.0) -> dict:
    """Per attribute, log of the (add-``smoothing``) value frequencies among labelled records."""
    priors = {}
    for spec in schema.attributes:
        counts = torch.full((len(spec.values),), float(smoothing))
        for r in records:
            if r.attributes and spec.name in r.attributes:
                counts[spec.values.index(r.attributes[spec.name])] += 1
        priors[spec.name] = torch.log(counts / counts.sum())
    return priors


def init_attribute_biases(network: SketchPhotoNet, records: list[ImageRecord]) -> None:
    """Start each attribute classifier at the label prior. The BN-neck embedding is centred, so the
    prior lives in the bias alone, which Adam at a re-ID learning rate moves only slowly; without
    this the head spends the run far from even the majority-class accuracy."""
    priors = attribute_log_priors(records, network.attributes.schema)
    with torch.no_grad():
        for name, classifier in network.attributes.classifiers.items():
            classifier.bias.copy_(priors[name] - priors[name].mean())


def build_network(config: FitConfig, schema: AttributeSchema) -> SketchPhotoNet:
    """The run's network as its configuration describes it: ImageNet backbones, then with
    ``config.init`` every tensor of that checkpoint that fits (an earlier model, another architecture's)."""
    network = SketchPhotoNet(
        config.backbone,
        schema,
        config.embedding_dim,
        shared_backbone=config.share_backbone,
        parts=config.parts,
        part_columns=config.part_columns,
        feature_stride=config.feature_stride,
    )
    load_pretrained_backbones(network, Path(config.backbone_weights) if config.backbone_weights else None)
    if config.init:
        warm_start(network, Path(config.init))
    return network.train()


def _init_provenance(folder: Path) -> dict:
    """What a run started from (``--init``): the checkpoint's name, weights and kind."""
    manifest = read_manifest(folder)
    return {
        "folder": str(folder),
        "name": manifest.name,
        "weights_sha256": manifest.weights_sha256,
        "kind": manifest.provenance.get("kind"),
    }


def selection_score(validation: dict) -> tuple[float, float]:
    """What the epoch is chosen by: (R1 + mAP) / 2, ties broken by the margin between the true
    match and the best wrong one. An easy validation set (faces) reaches R1 and mAP 100 within a
    few epochs; without the margin the first such epoch would be kept, however far from converged."""
    return (validation["R1"] + validation["mAP"]) / 2, validation["margin"]


# ---------------------------------------------------------------------------------------- trainer


@dataclass
class TrainingData:
    """What a run trains on: the records, their identity classes, the Dataset and the batch samplers
    (as torchreid's data manager holds them, apart from the engine)."""

    fit: FitData
    configs: dict[Modality, PreprocessConfig]
    records: list[ImageRecord]  # target training records (and pseudo-sketches), then source records
    label_of: dict[tuple[str, str], int]  # identity key -> identity label (target labels first, then source)
    target_classes: int  # labels below this are target identities
    dataset: TrainingImages
    co_sampler: IdentityBatchSampler
    source_sampler: IdentityBatchSampler | None  # source-only pre-training batches, when asked for
    attributes_labelled: bool


def build_data(config: FitConfig, schema: AttributeSchema) -> TrainingData:
    fit = prepare_data(config, schema)
    configs = {
        Modality.PHOTO: PreprocessConfig(height=config.height, width=config.width),
        Modality.SKETCH: PreprocessConfig(
            height=config.height, width=config.width, greyscale=True, clean_sketch=config.clean_sketches
        ),
    }
    train = fit.train + (datasets.pseudo_sketches(fit.train) if config.pseudo_sketches else [])
    records = train + fit.source
    label_of = {key: i for i, key in enumerate(datasets.identities(records))}
    labels = [label_of[r.key] for r in records]
    is_source = [False] * len(train) + [True] * len(fit.source)
    dataset = TrainingImages(
        records,
        labels,
        configs,
        schema,
        source=is_source,
        seed=config.seed,
        augmentation=Augmentation(crop_scale=(config.crop_min, 1.0), pad=config.pad),
    )

    def sampler(share: float, seed: int) -> IdentityBatchSampler:
        return IdentityBatchSampler(
            records,
            labels,
            p=config.p,
            k=config.k,
            source=is_source,
            source_share=share,
            seed=seed,
            batches=config.steps_per_epoch,
        )

    return TrainingData(
        fit=fit,
        configs=configs,
        records=records,
        label_of=label_of,
        dataset=dataset,
        co_sampler=sampler(config.source_share if fit.source else 0.0, config.seed),
        source_sampler=sampler(1.0, config.seed + 1) if config.source_epochs else None,
        target_classes=len(datasets.identities(train)),
        attributes_labelled=any(r.attributes for r in records),
    )


@dataclass
class Heads:
    """The network and the heads that exist only in training."""

    network: SketchPhotoNet
    classifier: nn.Linear  # one class per target identity (and per source identity when not separate)
    domain_head: DomainClassifier  # behind the gradient-reversal layer
    source_classifier: nn.Linear | None = None  # the source identities' own classes (IHDA)
    teacher: OSNet | None = None  # frozen, for the teacher loss


def build_heads(config: FitConfig, schema: AttributeSchema, data: TrainingData, device: torch.device) -> Heads:
    network = build_network(config, schema)
    if not (config.init and read_manifest(Path(config.init)).attribute_head_trained):
        init_attribute_biases(network, data.records)
    network = network.to(device)
    dim = network.embedding_dim

    def identity_classifier(classes: int) -> nn.Linear:
        classifier = nn.Linear(dim, classes, bias=False).to(device)
        nn.init.normal_(classifier.weight, std=0.001)
        return classifier

    separate = config.source_classifier and bool(data.fit.source)
    classifier = identity_classifier(data.target_classes if separate else len(data.label_of))
    source_classifier = identity_classifier(len(data.label_of) - data.target_classes) if separate else None
    teacher = None
    if config.losses.teacher:
        teacher = load_osnet(Path(config.teacher)).network.to(device).requires_grad_(False)
    return Heads(network, classifier, DomainClassifier(dim).to(device), source_classifier, teacher)


def build_losses(config: FitConfig, schema: AttributeSchema, heads: Heads) -> dict[str, nn.Module]:
    names = schema.names
    return {
        "identity": LabelSmoothingCrossEntropy(config.label_smoothing),
        "triplet": CrossModalTripletLoss(config.margin),
        "mathm": ModalityAwareTripletLoss(config.margin),
        "attribute": AttributeLoss(names),
        "entropy": AttributeEntropyLoss(names),
        "consistency": AttributeConsistencyLoss(names),
        "domain": DomainAdversarialLoss(heads.domain_head),
        "teacher": SimilarityDistillationLoss(),
    }


def build_optimiser(config: FitConfig, heads: Heads) -> torch.optim.Optimizer:
    """Adam over everything; the attribute head learns ``attribute_lr_mult`` times faster."""
    head = {id(p) for p in heads.network.attributes.parameters()}
    params = [*heads.network.parameters(), *heads.classifier.parameters(), *heads.domain_head.parameters()]
    if heads.source_classifier is not None:
        params += list(heads.source_classifier.parameters())
    groups = [
        {"params": [p for p in params if p.requires_grad and id(p) not in head], "lr": config.lr},
        {"params": list(heads.network.attributes.parameters()), "lr": config.lr * config.attribute_lr_mult},
    ]
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)


class Trainer:
    def __init__(self, config: FitConfig, schema: AttributeSchema = PERSON_ATTRIBUTES, command: str | None = None):
        config.check()
        self.config = config
        self.schema = schema
        self.command = command or "sketchsearch-train " + shlex.join(sys.argv[1:])
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        self.device = choose_device(config.device)
        self.amp = config.amp and self.device.type == "cuda"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        # On the CPU the network's own threads are the bottleneck, and a decoding process beside them
        # only takes their cores; a GPU needs several to keep it fed.
        if config.workers is not None:
            self.workers = config.workers
        else:
            self.workers = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0

        training_data = build_data(config, schema)
        self.data, self.configs, self.dataset = training_data.fit, training_data.configs, training_data.dataset
        self.co_sampler, self.source_sampler = training_data.co_sampler, training_data.source_sampler
        self.attributes_labelled = training_data.attributes_labelled
        heads = build_heads(config, schema, training_data, self.device)
        self.network, self.classifier, self.domain_head = heads.network, heads.classifier, heads.domain_head
        self.source_classifier, self.teacher = heads.source_classifier, heads.teacher
        self.target_classes = training_data.target_classes
        self.loss_fns = build_losses(config, schema, heads)
        self.optimizer = build_optimiser(config, heads)
        self.epochs_total = config.source_epochs + config.epochs
        self.steps_total = sum(len(self._sampler(e)) for e in range(self.epochs_total))
        warmup = sum(len(self._sampler(e)) for e in range(min(config.warmup_epochs, self.epochs_total)))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup, self.steps_total)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0  # next epoch to run
        self.step = 0
        self.best_score: tuple[float, float] = (-1.0, float("-inf"))
        self.best_epoch = -1
        self.best_validation: dict | None = None

    # -- schedule -----------------------------------------------------------------------------

    def _phase(self, epoch: int) -> str:
        return "source" if epoch < self.config.source_epochs else "co-train"

    def _sampler(self, epoch: int) -> IdentityBatchSampler:
        return self.source_sampler if self._phase(epoch) == "source" else self.co_sampler

    # -- state ----------------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "network": self.network.state_dict(),
            "classifier": self.classifier.state_dict(),
            "domain_head": self.domain_head.state_dict(),
            **({"source_classifier": self.source_classifier.state_dict()} if self.source_classifier else {}),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_score": list(self.best_score),
            "best_epoch": self.best_epoch,
            "torch_rng": torch.get_rng_state(),
        }

    def save_state(self) -> None:
        tmp = self.out / (STATE_FILE + ".tmp")
        torch.save(self._state(), tmp)
        tmp.replace(self.out / STATE_FILE)

    def load_state(self) -> bool:
        path = self.out / STATE_FILE
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.network.load_state_dict(state["network"])
        self.classifier.load_state_dict(state["classifier"])
        self.domain_head.load_state_dict(state["domain_head"])
        if self.source_classifier is not None:
            self.source_classifier.load_state_dict(state["source_classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        best = state["best_score"]  # older states hold the first score alone
        self.best_score = tuple(best) if isinstance(best, (list, tuple)) else (float(best), float("-inf"))
        self.best_epoch = int(state["best_epoch"])
        torch.set_rng_state(state["torch_rng"].cpu())
        log.info("resumed from %s at epoch %d", path, self.epoch)
        return True

    def _manifest(self, name: str, provenance: dict) -> Manifest:
        licence, data_terms = self.config.data_terms()
        return Manifest(
            name=name,
            backbone=self.network.backbone_name,
            shared_backbone=self.network.shared_backbone,
            parts=self.network.parts,
            part_columns=self.network.part_columns,
            feature_stride=self.network.feature_stride,
            test_time_flip=self.config.test_time_flip,
            embedding_dim=self.network.embedding_dim,
            preprocess=dict(self.configs),
            attribute_schema=self.schema,
            attribute_head_trained=bool(self.attributes_labelled and self.config.losses.attribute > 0),
            provenance=provenance,
            licence=licence,
            data_terms=data_terms,
        )

    def _provenance(self, **extra) -> dict:
        config = self.config
        return {
            "kind": "trained (IHDA-style sketch/photo co-training)",
            "command": self.command,
            "data": {
                "target": config.dataset,
                "root": str(config.root),
                "source": config.source,
                "source_root": str(config.source_root) if config.source_root else None,
                "train_images": len(self.data.train),
                "pseudo_sketches": len(self.dataset) - len(self.data.train) - len(self.data.source),
                "train_identities": len(datasets.identities(self.data.train)),
                "validation_identities": sorted(i for _, i in datasets.identities(self.data.validation)),
                "test_identities": len(datasets.identities(self.data.test)),
                "source_images": len(self.data.source),
                "source_identities": len(datasets.identities(self.data.source)),
            },
            "split": self.data.split_name,
            **({"init": _init_provenance(Path(config.init))} if config.init else {}),
            "seed": config.seed,
            "git": git_commit(),
            "config": config.to_json(),
            "torch": torch.__version__,
            "device": str(self.device),
            **extra,
        }

    # -- training -------------------------------------------------------------------------------

    def _loader(self, epoch: int) -> DataLoader:
        sampler = self._sampler(epoch)
        sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )

    def compute_losses(self, batch: dict, phase: str) -> dict[str, torch.Tensor]:
        weights = self.config.losses
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["label"].to(self.device)
        modality = batch["modality"].to(self.device)
        domains = batch["domain"].to(self.device)
        targets = batch["attributes"].to(self.device)
        feature, embedding = forward_mixed(self.network, images, modality)
        losses: dict[str, torch.Tensor] = {}
        if self.source_classifier is not None:
            losses.update(self._separate_identity_losses(embedding, labels, domains))
        elif weights.identity:
            losses["identity"] = self.loss_fns["identity"](self.classifier(embedding), labels)
        if weights.triplet:
            losses["triplet"] = self.loss_fns["triplet"](feature, labels, modality)
        if weights.mathm:
            losses["mathm"] = self.loss_fns["mathm"](feature, labels, modality)
        if weights.attribute or weights.entropy or weights.consistency:
            logits = self.network.attributes(embedding)
            labelled = (targets != -1).any(1)
            if weights.attribute:
                losses["attribute"] = self.loss_fns["attribute"](logits, targets)
            if weights.entropy:
                losses["entropy"] = self.loss_fns["entropy"](logits, ~labelled)
            if weights.consistency:
                losses["consistency"] = self.loss_fns["consistency"](logits, labels, modality)
        if weights.domain and phase == "co-train" and domains.unique().numel() > 1:
            losses["domain"] = self.loss_fns["domain"](feature, domains)
        if weights.teacher and self.teacher is not None:
            photos = modality == 0
            if photos.sum() > 1:
                with torch.no_grad():
                    taught = self.teacher(images[photos].float())
                losses["teacher"] = self.loss_fns["teacher"](embedding[photos], taught)
        return losses

    def _separate_identity_losses(
        self, embedding: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """IHDA's identity terms: target identities through the target's classifier, source
        identities through their own (each softmax over its own people only)."""
        weights, losses = self.config.losses, {}
        source = domains == SOURCE_PHOTO
        if weights.identity and (~source).any():
            losses["identity"] = self.loss_fns["identity"](self.classifier(embedding[~source]), labels[~source])
        if weights.source_identity and source.any():
            logits = self.source_classifier(embedding[source])
            losses["source_identity"] = self.loss_fns["identity"](logits, labels[source] - self.target_classes)
        return losses

    def train_epoch(self, epoch: int) -> dict[str, float]:
        phase = self._phase(epoch)
        self.network.train()
        self.classifier.train()
        self.domain_head.train()
        if self.source_classifier is not None:
            self.source_classifier.train()
        weights = dataclasses.asdict(self.config.losses)
        sums: dict[str, float] = {}
        steps = 0
        loader = self._loader(epoch)
        if self.config.progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc=f"epoch {epoch + 1}/{self.epochs_total} ({phase})", leave=False)
        for batch in loader:
            self.domain_head.strength = dann_strength(self.step / max(1, self.steps_total), self.config.domain_gamma)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                losses = self.compute_losses(batch, phase)
            total = sum(weights[name] * value.float() for name, value in losses.items())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            steps += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(total.detach())
            if self.config.progress:
                loader.set_postfix(loss=f"{float(total):.3f}")
        return {name: value / max(1, steps) for name, value in sums.items()}

    def validate(self) -> dict | None:
        if not self.data.validation:
            return None
        embedder = InferenceModel.from_network(self.network, self._manifest("validation", {}), self.device)
        return headline(evaluate_records(embedder, self.data.validation, self.schema))

    def _log(self, row: dict) -> None:
        path = self.out / "log.csv"
        losses = [f.name for f in dataclasses.fields(LossWeights)]
        columns = [
            "epoch",
            "phase",
            "step",
            "lr",
            "seconds",
            "loss",
            *losses,
            "val_R1",
            "val_R10",
            "val_mAP",
            "val_margin",
        ]
        new = not path.is_file()
        if not new:  # a resumed run keeps the columns its log was started with
            with open(path, newline="", encoding="utf-8") as handle:
                columns = next(csv.reader(handle), columns)
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in row.items()})

    def fit(self) -> Manifest:
        """Train (resuming when state exists and ``config.resume``), then export ``out/model``."""
        self.config.save(self.out / "config.json")
        if self.config.resume:
            self.load_state()
        while self.epoch < self.epochs_total:
            epoch = self.epoch
            started = time.time()
            losses = self.train_epoch(epoch)
            row = {
                "epoch": epoch + 1,
                "phase": self._phase(epoch),
                "step": self.step,
                "lr": self.optimizer.param_groups[0]["lr"],
                **losses,
            }
            last = epoch + 1 == self.epochs_total
            if self._phase(epoch) == "co-train" and ((epoch + 1) % self.config.eval_every == 0 or last):
                validation = self.validate()
                score = selection_score(validation) if validation else (float(epoch), 0.0)
                if validation:
                    row.update(
                        val_R1=validation["R1"],
                        val_R10=validation["R10"],
                        val_mAP=validation["mAP"],
                        val_margin=validation["margin"],
                    )
                if score > self.best_score:
                    self.best_score, self.best_epoch = score, epoch + 1
                    self.best_validation = validation
                    provenance = self._provenance(validation=validation, epoch=epoch + 1)
                    save_checkpoint(self.network.eval(), self._manifest("best", provenance), self.out / "best")
            row["seconds"] = time.time() - started
            self._log(row)
            log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            self.epoch += 1
            self.save_state()
        return self.export()

    def export(self) -> Manifest:
        """Load the validation-selected weights, measure the test split and write ``out/model``."""
        best = self.out / "best"
        if best.is_dir():
            network, manifest = load_checkpoint(best)
            self.network.load_state_dict(network.state_dict())
            validation = manifest.provenance.get("validation")
            epoch = manifest.provenance.get("epoch")
        else:
            validation, epoch = None, self.epoch
        if self.config.half:  # measure the weights exactly as they will be stored
            with torch.no_grad():
                for tensor in self.network.state_dict().values():
                    if tensor.is_floating_point():
                        tensor.copy_(tensor.half().float())
        embedder = InferenceModel.from_network(self.network, self._manifest("test", {}), self.device)
        test = headline(evaluate_records(embedder, self.data.test, self.schema))
        name = f"{self.network.backbone_name}-ihda-{self.data.split_name}"
        provenance = self._provenance(
            metrics={"test": test, "validation": validation, "selected_epoch": epoch, "epochs": self.epochs_total}
        )
        manifest = self._manifest(name, provenance)
        save_checkpoint(self.network, manifest, self.out / "model", half=self.config.half)
        export_onnx(self.out / "model")  # what the app and the command line run (on ONNX Runtime)
        return read_manifest(self.out / "model")


def fit(config: FitConfig, command: str | None = None) -> Manifest:
    return Trainer(config, command=command).fit()
