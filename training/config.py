"""The fit configuration: every knob of a training run, recorded in the checkpoint's provenance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.common.errors import SketchSearchError
from core.model.backbones import backbone_spec

TARGETS = ("pku", "paired", "cufs")
SOURCES = ("market1501", "cufs", "paired", "reid")


class ConfigError(SketchSearchError, ValueError):
    """Settings that cannot make a run (reported as a one-line error by the command line)."""


# The terms each data set is used on, recorded in every model trained on it (its manifest and the
# About box). The research sets carry no licence to redistribute; an agency's own folder is its own.
DATA_TERMS = {
    "pku": "PKU-Sketch (Pang et al., ACM MM 2018): research use only",
    "cufs": "CUHK Face Sketch database (CUFS): research use only",
    "market1501": "Market-1501 (Zheng et al., ICCV 2015) and its attribute labels: research use only",
    "paired": "a paired sketch/photo folder: the terms of its owner",
    "reid": "labelled re-identification photos (CUHK03: research use only; an agency's own: its terms)",
}
# reid counts as research data: the shared CUHK03 folder is, and the safer reading is kept
RESEARCH_DATA = {"pku", "cufs", "market1501", "reid"}


@dataclass
class LossWeights:
    identity: float = 1.0
    triplet: float = 1.0  # batch-hard cross-modal triplet
    mathm: float = 1.0  # modality-aware triplet (cross / within / hybrid)
    attribute: float = 0.5  # attribute cross-entropy on labelled images
    entropy: float = 0.1  # attribute entropy on unlabelled images
    consistency: float = 0.2  # sketch vs photo attribute agreement
    domain: float = 0.1  # adversarial 3-way domain classifier (gradient reversal)
    source_identity: float = 1.0  # the source identities' own classifier (with source_classifier)
    teacher: float = 0.0  # keep the teacher's (OSNet's) pairwise cosine similarities among a batch's photos


@dataclass
class FitConfig:
    out: str
    root: str  # target data set folder
    dataset: str = "pku"  # pku (official splits) | paired | cufs (seeded identity split)
    split: int = 1  # PKU-Sketch split 1..10
    test_identities: float = 0.25  # non-PKU targets: identities held out for testing
    validation_identities: float = 15  # carved from the training identities (count, or fraction < 1)
    limit_identities: int | None = None  # keep only this many training (and test) identities: quick runs
    target_attributes: bool = True  # use the target's attribute labels (else they count as unlabelled)

    source: str | None = None  # market1501 | cufs | paired | reid (<id>_<cam>_<k> photos): labelled source domain
    source_root: str | None = None
    source_ids: str | None = None  # reid: keep ids FIRST-LAST (default for the shared CUHK03: 0000-0742)
    source_mat: str | None = None  # market_attribute.mat for market1501
    source_share: float = 0.25  # share of each batch's identities from the source
    source_epochs: int = 0  # source-only pre-training epochs before co-training
    source_limit_identities: int | None = None
    # the source identities get their own classifier over the shared embedding (IHDA); off: one
    # classifier over target and source identities together (the earlier recipes)
    source_classifier: bool = False
    teacher: str | None = None  # OSNet x0.25 weights (.safetensors) for the teacher loss (--w-teacher)

    backbone: str = "efficientnet_lite0"
    embedding_dim: int | None = None
    parts: int = 1  # horizontal stripes pooled side by side into the embedding (1: global pooling)
    part_columns: int = 1  # columns of the pooling grid (faces: a parts x part_columns grid)
    feature_stride: int = 32  # cut the backbone at this output stride (32: whole; 16: finer, earlier features)
    share_backbone: bool = False  # one set of convolutions for both encoders, normalisation per modality
    # checkpoint folder to start from (any model folder): its tensors that fit this run's network by
    # name and shape are loaded over the ImageNet backbones
    init: str | None = None
    backbone_weights: str | None = None  # ImageNet weights file (resnet50 needs one)
    height: int = 256
    width: int = 128
    crop_min: float = 0.85  # augmentation: the random crop keeps at least this side fraction (1: no crop)
    pad: float = 0.05  # augmentation: at most this fraction of each side added as border (0: none)
    pseudo_sketches: bool = False  # add a pencil rendering of each training photo as a sketch
    clean_sketches: bool = True  # sketches auto-contrasted and cropped to their ink, as the app's queries are
    test_time_flip: bool = True  # the model embeds an image and its mirror image and averages them

    epochs: int = 60  # co-training epochs
    steps_per_epoch: int | None = None  # default: identities / P
    p: int = 8  # identities per batch
    k: int = 4  # images per identity (half sketches, half photos for target identities)
    lr: float = 3.5e-4
    attribute_lr_mult: float = 10.0  # the attribute head learns faster than the encoders
    weight_decay: float = 5e-4
    warmup_epochs: int = 5
    label_smoothing: float = 0.1
    margin: float = 0.3
    domain_gamma: float = 10.0  # gradient-reversal ramp 2/(1+exp(-gamma p)) - 1
    losses: LossWeights = field(default_factory=LossWeights)

    device: str = "auto"
    amp: bool = True  # float16 autocast + grad scaling on CUDA
    workers: int | None = None  # decoding processes; default: none on the CPU (fastest there), 8 on CUDA
    threads: int | None = None  # torch CPU threads
    seed: int = 0
    eval_every: int = 1
    progress: bool = True
    half: bool = False  # store the exported weights as float16
    resume: bool = True  # continue from out/state.pt when present

    def to_json(self) -> dict:
        return asdict(self)

    def data_terms(self) -> tuple[str, str]:
        """(licence, data terms) of a model trained with this configuration."""
        used = [self.dataset] + ([self.source] if self.source else [])
        terms = "; ".join(DATA_TERMS[name] for name in used) + "; respect the privacy of the people pictured"
        research = any(name in RESEARCH_DATA for name in used)
        licence = "research use only: bound by the terms of its training data" if research else "as its data allow"
        return licence, terms

    @classmethod
    def from_json(cls, data: dict) -> FitConfig:
        data = dict(data)
        data["losses"] = LossWeights(**data.get("losses", {}))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def check(self) -> None:
        if self.dataset not in TARGETS:
            raise ConfigError(f"dataset must be one of {TARGETS}")
        if self.source is not None and self.source not in SOURCES:
            raise ConfigError(f"source must be one of {SOURCES}")
        if self.source is not None and not self.source_root:
            raise ConfigError("a source data set needs source_root")
        if self.source_ids and self.source != "reid":
            raise ConfigError("source_ids selects identities of a re-ID folder source (--source reid)")
        if self.source_epochs and self.source is None:
            raise ConfigError("source_epochs needs a source data set")
        if self.losses.teacher and not self.teacher:
            raise ConfigError("the teacher loss (--w-teacher) needs --teacher PATH (OSNet x0.25 .safetensors)")
        if self.parts < 1 or self.part_columns < 1:
            raise ConfigError("parts and part_columns must be at least 1")
        backbone_spec(self.backbone).feature_dim(self.feature_stride)  # the strides it offers
        if not 0 < self.crop_min <= 1:
            raise ConfigError("crop_min must be in (0, 1]")
        if not 0 <= self.pad < 1:
            raise ConfigError("pad must be in [0, 1)")
