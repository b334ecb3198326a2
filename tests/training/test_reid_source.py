"""The re-ID photo folder loader (``<id>_<cam>_<k>.<ext>``) and the guard that keeps the
large-gallery distractor identities out of every training source."""

from __future__ import annotations

from pathlib import Path

import pytest
from training_test_helpers import write_image

from core.model.network import Modality
from training.cli import main
from training.config import ConfigError, FitConfig
from training.data import DataError, identities, parse_id_range, reid_folder
from training.distractors import DISTRACTOR_IDENTITIES, distractor_records, is_distractor
from training.engine import prepare_data

REPO = Path(__file__).resolve().parents[2]
CUHK = (REPO / "../shared/data/cuhk-reid").resolve()


def write_reid_folder(folder: Path, ids: list[str], cams=("a", "b"), per_cam: int = 2) -> Path:
    seed = 0
    for pid in ids:
        for cam in cams:
            for k in range(per_cam):
                write_image(folder / f"{pid}_{cam}_{k:02d}.jpg", seed)
                seed += 1
    return folder


def test_reid_folder_reads_identities_and_cameras(tmp_path):
    folder = write_reid_folder(tmp_path / "agency", ["0001", "0002", "0015"])
    write_image(folder / "0003_c4_7.png", 50)  # any extension, any camera token
    (folder / "notes.txt").write_text("not an image")  # non-image files are not photos
    records = reid_folder(folder)
    assert len(records) == 3 * 4 + 1
    assert [i for _, i in identities(records)] == ["0001", "0002", "0003", "0015"]
    assert all(r.modality is Modality.PHOTO and r.dataset == "agency" and r.attributes is None for r in records)
    by_name = {r.path.name: r for r in records}
    assert by_name["0002_b_01.jpg"].identity == "0002" and by_name["0002_b_01.jpg"].camera == "b"
    assert by_name["0003_c4_7.png"].camera == "c4"
    assert {r.camera for r in records if r.identity == "0001"} == {"a", "b"}
    # an id range keeps numeric ids inside it, both ends included
    assert [i for _, i in identities(reid_folder(folder, (2, 3)))] == ["0002", "0003"]


@pytest.mark.parametrize("name", ["0001_a.jpg", "0001-a-00.jpg", "0001_a_00_x.jpg", "_a_00.jpg", "0001_ä_00.jpg"])
def test_reid_folder_rejects_a_bad_name_naming_the_file_and_the_pattern(tmp_path, name):
    folder = write_reid_folder(tmp_path / "photos", ["0001"])
    write_image(folder / name, 7)
    with pytest.raises(DataError) as error:
        reid_folder(folder)
    message = str(error.value)
    assert name in message and "<id>_<cam>_<k>" in message


def test_reid_folder_empty_or_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        reid_folder(tmp_path / "absent")
    folder = write_reid_folder(tmp_path / "photos", ["0001"])
    with pytest.raises(DataError, match="no re-ID photos with ids 5-9"):
        reid_folder(folder, (5, 9))


def test_parse_id_range():
    assert parse_id_range("0000-0742") == (0, 742)
    assert parse_id_range("17") == (17, 17)
    for bad in ("", "a-b", "9-3", "1-2-3"):
        with pytest.raises(DataError):
            parse_id_range(bad)


def _config(tmp_path: Path, pku_root: Path, source_root: Path, **extra) -> FitConfig:
    return FitConfig(
        out=str(tmp_path / "run"),
        root=str(pku_root),
        source="reid",
        source_root=str(source_root),
        limit_identities=6,
        validation_identities=2,
        **extra,
    )


def test_a_cuhk03_source_never_holds_a_distractor_identity(tmp_path, pku_root):
    # a folder laid out as the shared CUHK03 one, with ids on both sides of the 0742/0743 boundary
    cuhk03 = write_reid_folder(tmp_path / "cuhk03", ["0000", "0741", "0742", "0743", "0800", "0842"])
    fit = prepare_data(_config(tmp_path, pku_root, cuhk03))
    kept = {i for _, i in identities(fit.source)}
    assert kept == {"0000", "0741", "0742"}  # by default only the ids that are not distractors
    assert not any(is_distractor(r) for r in fit.source)
    # asking for distractor ids explicitly stops the run before anything is trained
    with pytest.raises(DataError, match=r"large-gallery distractors \(cuhk03/0743, cuhk03/0800, cuhk03/0842\)"):
        prepare_data(_config(tmp_path, pku_root, cuhk03, source_ids="0000-0842"))
    # CUHK01 is a distractor set as a whole
    cuhk01 = write_reid_folder(tmp_path / "cuhk01", ["0001", "0002"])
    with pytest.raises(DataError, match="distractors"):
        prepare_data(_config(tmp_path, pku_root, cuhk01))
    # so is the CLI: a one-line error and exit code 2, no training
    args = ["fit", "--root", str(pku_root), "--out", str(tmp_path / "cli"), "--source", "reid"]
    assert main([*args, "--source-root", str(cuhk01), "--limit-identities", "6"]) == 2
    # an id range only means something for a re-ID folder
    with pytest.raises(ConfigError, match="--source reid"):
        FitConfig(out="x", root=str(pku_root), source="cufs", source_root="y", source_ids="0-9").check()


def test_the_shared_cuhk03_source_is_ids_0000_to_0742(tmp_path, pku_root):
    cuhk03 = CUHK / "cuhk03"
    if not cuhk03.is_dir():
        pytest.skip(f"CUHK03 not found at {cuhk03}")
    fit = prepare_data(_config(tmp_path, pku_root, cuhk03))
    ids = {int(i) for _, i in identities(fit.source)}
    assert len(fit.source) == 7239 and ids == set(range(743))
    assert not any(is_distractor(r) for r in fit.source)


def test_the_shared_distractors_are_the_named_4822_photos():
    if not CUHK.is_dir():
        pytest.skip(f"CUHK re-ID data not found at {CUHK}")
    records = distractor_records([CUHK / "cuhk01", CUHK / "cuhk03"])
    assert len(records) == 4822 and all(is_distractor(r) for r in records)
    cuhk03 = {int(r.identity) for r in records if r.dataset == "cuhk03"}
    assert cuhk03 == set(range(743, 843))
    assert (
        DISTRACTOR_IDENTITIES["cuhk01"] is None and len({r.identity for r in records if r.dataset == "cuhk01"}) == 971
    )


def test_distractors_are_embedded_once_per_model(tmp_path):
    from core.model.inference import InferenceModel
    from core.model.untrained import init_checkpoint
    from training.distractors import DistractorCache
    from training.evaluate import with_settings

    init_checkpoint(tmp_path / "model", "efficientnet_lite0", None, None, command="test")
    model = InferenceModel(tmp_path / "model", "cpu")
    calls = []

    class Counting:  # the real model, counting how many images it is asked to embed
        def embed_images(self, images, modality):
            calls.append(len(images))
            return model.embed_images(images, modality)

    records = reid_folder(write_reid_folder(tmp_path / "others", ["0001", "0002"], per_cam=1))
    cache = DistractorCache(records)
    first = cache.embeddings(Counting(), model.manifest.embedding_key)
    again = cache.embeddings(Counting(), model.manifest.embedding_key)
    assert first.shape == (4, model.embedding_dim) and again is first and calls == [4]
    # other settings give other vectors: a new key embeds them again
    flipped = with_settings(model.manifest, test_time_flip=not model.manifest.test_time_flip)
    assert cache.embeddings(Counting(), flipped.embedding_key) is not first and calls == [4, 4]
