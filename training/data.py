"""Data set loaders: each turns a data set folder into typed :class:`ImageRecord` lists.

Loaders only read file names and label files; images are decoded later by
:mod:`training.dataset`. Attribute values are mapped onto the model's :class:`AttributeSchema`;
a value a data set does not give (or gives ambiguously) is left out of the record's dict, which
the losses treat as "unknown".
"""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.errors import SketchSearchError
from core.model.attributes import PERSON_ATTRIBUTES, AttributeSchema
from core.model.network import Modality

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PKU_SPLITS = tuple(range(1, 11))


class DataError(SketchSearchError):
    """A data set folder is missing, incomplete or not in the expected layout."""


@dataclass(frozen=True, eq=False)
class ImageRecord:
    path: Path
    identity: str  # unique within its data set
    modality: Modality
    attributes: dict[str, str] | None = None  # known attribute values; None: no labels at all
    dataset: str = ""
    camera: str | None = None
    pseudo_sketch: bool = False  # a sketch rendered from the photo at ``path`` when loaded (training only)
    style: str | None = None  # the painting style of a sketch, where the data set records it

    @property
    def key(self) -> tuple[str, str]:
        """Identity key unique across data sets."""
        return (self.dataset, self.identity)


@dataclass(frozen=True)
class Split:
    train: list[ImageRecord]
    test: list[ImageRecord]
    name: str = ""


def identities(records: Iterable[ImageRecord]) -> list[tuple[str, str]]:
    """Identity keys in order of first appearance."""
    return list(dict.fromkeys(r.key for r in records))


def pseudo_sketches(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """One sketch-modality record per photo of ``records``, rendered from that photo when loaded:
    more sketches of the training identities than the one drawing each has."""
    return [
        dataclasses.replace(r, modality=Modality.SKETCH, pseudo_sketch=True, camera=None)
        for r in records
        if r.modality is Modality.PHOTO
    ]


def by_modality(records: Iterable[ImageRecord], modality: Modality | str) -> list[ImageRecord]:
    modality = Modality(modality)
    return [r for r in records if r.modality is modality]


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found")
    return path


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_attribute_csv(path: Path, schema: AttributeSchema = PERSON_ATTRIBUTES) -> dict[str, dict[str, str]]:
    """``id,<attribute>,...`` rows -> id -> {attribute: value}. Columns the schema does not know are
    ignored; empty cells and 'unknown' are left out; any other value must be in the schema."""
    table: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise DataError(f"{path}: expected an 'id' column")
        columns = [c for c in reader.fieldnames if c in schema.names]
        for row in reader:
            values = {}
            for column in columns:
                value = (row.get(column) or "").strip().lower()
                if value in ("", "unknown", "?", "na"):
                    continue
                try:
                    schema.check(column, value)
                except SketchSearchError as exc:
                    raise DataError(f"{path}: id {row['id']}: {exc}") from exc
                values[column] = value
            table[row["id"].strip()] = values
    return table


# ----------------------------------------------------------------------------------------- PKU


def _read_pku_list(root: Path, name: str) -> list[tuple[str, str, str]]:
    path = root / "idx" / name
    if not path.is_file():
        raise DataError(f"{path}: PKU-Sketch split list not found")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def pku_sketch(
    root: Path, split: int, schema: AttributeSchema = PERSON_ATTRIBUTES, *, attributes: bool = True
) -> Split:
    """PKU-Sketch official split ``split`` (1..10): 150 training and 50 test identities.

    Listed files that do not exist (the lost sketches of ids 160, 168, 169) are skipped.
    Per-person attributes come from ``attributes.csv`` when present and ``attributes`` is set."""
    root = _require_dir(Path(root), "PKU-Sketch")
    if split not in PKU_SPLITS:
        raise DataError(f"PKU-Sketch split must be 1..10, got {split}")
    labels = {}
    if attributes and (root / "attributes.csv").is_file():
        labels = read_attribute_csv(root / "attributes.csv", schema)
    styles = pku_painting_styles(root)

    def load(part: str) -> list[ImageRecord]:
        records = []
        for kind, modality in (("visible", Modality.PHOTO), ("sketch", Modality.SKETCH)):
            for rel, pid, camera in _read_pku_list(root, f"{part}_{kind}_{split}.txt"):
                path = root / rel
                if not path.is_file():
                    continue
                records.append(
                    ImageRecord(
                        path=path,
                        identity=pid,
                        modality=modality,
                        attributes=dict(labels[pid]) if pid in labels else None,
                        dataset="pku",
                        camera=camera if modality is Modality.PHOTO else None,
                        style=styles.get(pid) if modality is Modality.SKETCH else None,
                    )
                )
        return records

    train, test = load("train"), load("test")
    overlap = {r.identity for r in train} & {r.identity for r in test}
    if overlap:
        raise DataError(f"PKU-Sketch split {split}: ids in both train and test: {sorted(overlap)[:5]}")
    return Split(train=train, test=test, name=f"pku-{split}")


def pku_painting_styles(root: Path) -> dict[str, str]:
    """Person id -> painting style (``a``..``e``, one per artist) from ``styleAnnotation/<style>_<count>.txt``
    (one id per line); empty when the folder is absent."""
    styles = {}
    for path in sorted((Path(root) / "styleAnnotation").glob("*_*.txt")):
        style = path.stem.split("_")[0]
        for pid in path.read_text(encoding="utf-8").split():
            if styles.setdefault(pid, style) != style:
                raise DataError(f"{path}: person {pid} is also listed under style {styles[pid]}")
    return styles


# ----------------------------------------------------------------------------------- Market-1501

_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")

# Market-1501 attribute codes (Lin et al.): 1/2 -> our values. Colour columns are 1 no / 2 yes.
_MARKET_BINARY = {
    "gender": ("gender", {1: "male", 2: "female"}),
    "hair": ("hair", {1: "short", 2: "long"}),
    "up": ("sleeve", {1: "long", 2: "short"}),
    "down": ("lower_length", {1: "long", 2: "short"}),
    "hat": ("hat", {1: "no", 2: "yes"}),
    "backpack": ("backpack", {1: "no", 2: "yes"}),
}
_MARKET_AGE = {1: "child", 2: "teen", 3: "adult", 4: "senior"}


def read_market_attributes(
    mat_path: Path, subset: str = "train", schema: AttributeSchema = PERSON_ATTRIBUTES
) -> dict[str, dict[str, str]]:
    """``market_attribute.mat`` -> identity ("0002") -> attributes in our schema.

    Mapping: gender, age, hair, up -> sleeve, down -> lower_length, hat, backpack,
    bag or handbag -> bag, clothes (dress/pants) with down -> lower_type (pants: trousers when long,
    shorts when short; Market's "dress" covers skirts and dresses, so it stays unknown), exactly one
    ``up<colour>`` -> upper_color and one ``down<colour>`` -> lower_color (none or several: unknown)."""
    from scipy.io import loadmat

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise DataError(f"{mat_path}: Market-1501 attribute file not found")
    try:
        data = loadmat(str(mat_path))["market_attribute"][0, 0][subset][0, 0]
    except (KeyError, ValueError, IndexError) as exc:
        raise DataError(f"{mat_path}: not a market_attribute.mat with a '{subset}' part ({exc})") from exc
    names = data.dtype.names

    def flat(value) -> np.ndarray:
        array = np.asarray(value)
        while array.dtype == object and array.size == 1:  # MATLAB cells nest 1x1 wrappers
            array = np.asarray(array.item())
        return array.ravel()

    column = {name: flat(data[name]) for name in names}
    ids = [str(np.asarray(v).ravel()[0]) for v in column["image_index"]]
    colours = set(schema.spec("upper_color").values) if "upper_color" in schema.names else set()
    table: dict[str, dict[str, str]] = {}
    for i, pid in enumerate(ids):
        code = {name: int(column[name][i]) for name in names if name != "image_index"}
        values: dict[str, str] = {}
        for market, (ours, mapping) in _MARKET_BINARY.items():
            if market in code and code[market] in mapping:
                values[ours] = mapping[code[market]]
        if code.get("age") in _MARKET_AGE:
            values["age"] = _MARKET_AGE[code["age"]]
        if "bag" in code or "handbag" in code:
            values["bag"] = "yes" if 2 in (code.get("bag"), code.get("handbag")) else "no"
        if code.get("clothes") == 2 and code.get("down") in (1, 2):
            values["lower_type"] = "trousers" if code["down"] == 1 else "shorts"
        for prefix, ours in (("up", "upper_color"), ("down", "lower_color")):
            worn = [
                n[len(prefix) :] for n in names if n.startswith(prefix) and n[len(prefix) :] in colours and code[n] == 2
            ]
            if len(worn) == 1:
                values[ours] = worn[0]
        table[pid] = {k: v for k, v in values.items() if k in schema.names}
    return table


def market1501(
    root: Path,
    mat_path: Path | None = None,
    subset: str = "train",
    schema: AttributeSchema = PERSON_ATTRIBUTES,
) -> list[ImageRecord]:
    """Market-1501 photos from ``root/bounding_box_<subset>/<pid>_c<cam>s..jpg`` (junk ids 0000 and
    -1 dropped), with per-identity attributes from ``market_attribute.mat`` (``mat_path``, else
    ``root/market_attribute.mat`` when present)."""
    root = Path(root)
    folder = _require_dir(root / f"bounding_box_{subset}", "Market-1501 image")
    mat_path = Path(mat_path) if mat_path else root / "market_attribute.mat"
    labels = read_market_attributes(mat_path, subset, schema) if mat_path.is_file() else {}
    records = []
    for path in _image_files(folder):
        match = _MARKET_NAME.match(path.name)
        if not match or int(match.group(1)) <= 0:
            continue
        pid = f"{int(match.group(1)):04d}"
        records.append(
            ImageRecord(
                path=path,
                identity=pid,
                modality=Modality.PHOTO,
                attributes=dict(labels[pid]) if pid in labels else None,
                dataset="market1501",
                camera=match.group(2),
            )
        )
    if not records:
        raise DataError(f"{folder}: no Market-1501 images (<pid>_c<cam>s<seq>_<frame>.jpg)")
    return records


# ------------------------------------------------------------------------------------ re-ID folder

REID_NAME = re.compile(r"^(?P<id>[A-Za-z0-9]+)_(?P<cam>[A-Za-z0-9]+)_(?P<k>[A-Za-z0-9]+)$")
REID_PATTERN = "<id>_<cam>_<k>.<ext> (letters and digits, e.g. 0001_a_03.jpg)"


def parse_id_range(text: str) -> tuple[int, int]:
    """``"0000-0742"`` -> (0, 742), inclusive; a single number is a range of one."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text or "")
    if not match:
        raise DataError(f"identity range '{text}': expected FIRST-LAST, e.g. 0000-0742")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if last < first:
        raise DataError(f"identity range '{text}': the last id is below the first")
    return first, last


def in_id_range(identity: str, id_range: tuple[int, int] | None) -> bool:
    if id_range is None:
        return True
    return identity.isdigit() and id_range[0] <= int(identity) <= id_range[1]


def reid_folder(root: Path, ids: tuple[int, int] | None = None, dataset: str = "") -> list[ImageRecord]:
    """A labelled person re-ID photo folder: every image named ``<id>_<cam>_<k>.<ext>`` (CUHK03,
    CUHK01, or an agency's own labelled photos); identity and camera come from the name. ``ids``
    keeps only numeric identities in that inclusive range. The data set name (what identities are
    unique within) defaults to the folder's name. A file that does not follow the pattern stops
    the load with its name: a mislabelled photo would silently teach the wrong person."""
    root = _require_dir(Path(root), "re-ID photo")
    dataset = dataset or root.resolve().name
    records = []
    for path in _image_files(root):
        match = REID_NAME.match(path.stem)
        if not match:
            raise DataError(f"{path}: not a re-ID photo name: expected {REID_PATTERN}")
        if not in_id_range(match["id"], ids):
            continue
        records.append(ImageRecord(path, match["id"], Modality.PHOTO, None, dataset, camera=match["cam"]))
    if not records:
        kept = f" with ids {ids[0]}-{ids[1]}" if ids else ""
        raise DataError(f"{root}: no re-ID photos{kept} ({REID_PATTERN})")
    return records


# ------------------------------------------------------------------------------------------ CUFS


def cufs(root: Path, schema: AttributeSchema = PERSON_ATTRIBUTES) -> list[ImageRecord]:
    """CUHK Face Sketch (student part): ``photos/`` and ``sketches/`` with the same file names; the
    identity is the file stem, gender from the ``f``/``m`` prefix (``f-``, ``f1-``, ``m-``,
    ``m1-``). Unpaired files are skipped."""
    root = Path(root)
    photos = {p.stem: p for p in _image_files(_require_dir(root / "photos", "CUFS photo"))}
    sketches = {p.stem: p for p in _image_files(_require_dir(root / "sketches", "CUFS sketch"))}
    records = []
    for stem in sorted(photos.keys() & sketches.keys()):
        attributes = None
        if "gender" in schema.names and stem[:1] in ("f", "m"):  # f-/f1- female, m-/m1- male
            attributes = {"gender": "female" if stem.startswith("f") else "male"}
        for modality, path in ((Modality.PHOTO, photos[stem]), (Modality.SKETCH, sketches[stem])):
            records.append(ImageRecord(path, stem, modality, dict(attributes) if attributes else None, "cufs"))
    if not records:
        raise DataError(f"{root}: no photo/sketch pairs with the same file name")
    return records


# ---------------------------------------------------------------------------------- paired folder


def paired_folder(root: Path, schema: AttributeSchema = PERSON_ATTRIBUTES, dataset: str = "") -> list[ImageRecord]:
    """A generic folder: ``photos/<id>_<anything>.jpg``, ``sketches/<id>[_<anything>].jpg`` and an
    optional ``attributes.csv`` (``id`` column plus schema attribute columns)."""
    root = Path(root)
    dataset = dataset or root.name
    labels = read_attribute_csv(root / "attributes.csv", schema) if (root / "attributes.csv").is_file() else {}
    records = []
    for sub, modality in (("photos", Modality.PHOTO), ("sketches", Modality.SKETCH)):
        for path in _image_files(_require_dir(root / sub, f"paired {sub}")):
            pid = path.stem.split("_")[0]
            records.append(ImageRecord(path, pid, modality, dict(labels[pid]) if pid in labels else None, dataset))
    if not records:
        raise DataError(f"{root}: no images under photos/ or sketches/")
    return records


# ------------------------------------------------------------------------------- identity splits


def split_identities(
    records: Sequence[ImageRecord], count: int | float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Carve ``count`` identities (a fraction when < 1) out of ``records``, seeded:
    returns (rest, carved). Only identities with both modalities are carved when there are enough,
    so a validation or test set can always be queried sketch -> photo."""
    keys = identities(records)
    if isinstance(count, float) and count < 1:
        count = round(len(keys) * count)
    count = int(count)
    if count <= 0:
        return list(records), []
    if count >= len(keys):
        raise DataError(f"cannot carve {count} of {len(keys)} identities")
    modalities: dict[tuple[str, str], set[Modality]] = {}
    for r in records:
        modalities.setdefault(r.key, set()).add(r.modality)
    paired = [k for k in keys if len(modalities[k]) == 2]
    pool = paired if len(paired) >= count else keys
    carved = set(random.Random(seed).sample(sorted(pool), count))
    return [r for r in records if r.key not in carved], [r for r in records if r.key in carved]


def limit_identities(records: Sequence[ImageRecord], count: int | None, seed: int = 0) -> list[ImageRecord]:
    """Keep ``count`` identities (seeded choice among those with both modalities first): for quick
    runs and tests."""
    if not count:
        return list(records)
    keys = identities(records)
    if count >= len(keys):
        return list(records)
    _, kept = split_identities(records, count, seed)
    return kept


def paired_split(records: Sequence[ImageRecord], test: int | float, seed: int, name: str = "") -> Split:
    """A seeded identity split for data sets without official ones."""
    train, held = split_identities(records, test, seed)
    return Split(train=train, test=held, name=name or f"seed-{seed}")
