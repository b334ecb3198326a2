"""OSNet x0.25 and its loader: every tensor of torchreid's published weights (safetensors) finds
its place, and the loaded network tells real pedestrians apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from core.common.errors import CheckpointError
from core.common.imaging import load_rgb
from core.model.osnet import OSNet, load_osnet, map_osnet_state
from core.model.preprocess import PreprocessConfig, preprocess

DATA = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()
WEIGHTS = {
    "msmt17": (DATA / "osnet/osnet_x0_25_msmt17.safetensors", 1041),
    "market1501": (DATA / "osnet/osnet_x0_25_market1501.safetensors", 751),
}


def _weights(name: str) -> Path:
    path = WEIGHTS[name][0]
    if not path.is_file():
        pytest.skip(f"OSNet weights not found at {path} (research data is kept beside the repo in ../shared/data)")
    return path


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_every_stored_tensor_fills_every_network_tensor(name):
    path = _weights(name)
    stored = load_file(str(path))
    network = OSNet()
    mapped, classifier = map_osnet_state(stored, network)
    # every key of the file is consumed: by the network or by the classifier kept beside it
    assert set(mapped) | {f"classifier.{k}" for k in classifier} == set(stored)
    # every parameter and buffer of the network is filled, with the stored values
    assert set(mapped) == set(network.state_dict())
    loaded = load_osnet(path)
    for key, tensor in loaded.network.state_dict().items():
        assert torch.equal(tensor, stored[key].to(tensor.dtype)), key
    assert loaded.classifier.out_features == WEIGHTS[name][1] and loaded.classifier.in_features == 512
    assert torch.equal(loaded.classifier.weight, stored["classifier.weight"])
    assert not loaded.network.training
    with torch.no_grad():
        assert loaded.network(torch.zeros(2, 3, 256, 128)).shape == (2, 512)


def test_the_layout_is_osnet_x0_25():
    network = OSNet()
    state = network.state_dict()
    assert state["conv1.conv.weight"].shape == (16, 3, 7, 7)
    assert state["conv2.0.conv2d.3.conv2.weight"].shape == (16, 1, 3, 3)  # the 4th stream: 4 depthwise 3x3
    assert state["conv3.0.gate.fc1.weight"].shape == (1, 24, 1, 1)  # the shared gate, reduction 16
    assert state["conv4.1.conv3.conv.weight"].shape == (128, 32, 1, 1)
    assert state["fc.0.weight"].shape == (512, 128)
    assert "conv4.2.0.conv.weight" not in state  # the last stage keeps its resolution


def test_wrong_or_incomplete_weights_are_refused(tmp_path):
    path = _weights("msmt17")
    stored = load_file(str(path))
    partial = {k: v for k, v in stored.items() if k != "conv5.conv.weight"}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"partial.safetensors: OSNet weights: 1 tensors missing \(conv5"):
        load_osnet(tmp_path / "partial.safetensors")
    wrong = {**stored, "fc.0.weight": torch.zeros(256, 128)}
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(CheckpointError, match=r"fc.0.weight has shape \(256, 128\)"):
        load_osnet(tmp_path / "wrong.safetensors")
    extra = {**stored, "head.weight": torch.zeros(3)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected tensor head.weight"):
        load_osnet(tmp_path / "extra.safetensors")
    (tmp_path / "weights.pth").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="a pickle is never loaded"):
        load_osnet(tmp_path / "weights.pth")


def test_osnet_features_bring_two_photos_of_a_person_closer_than_other_people():
    network = load_osnet(_weights("msmt17")).network
    folder = DATA / "cuhk-reid" / "cuhk03"
    if not folder.is_dir():
        pytest.skip(f"CUHK03 not found at {folder}")
    people = [f"{i:04d}" for i in range(20)]
    # one photo from each of the two cameras: the hard, cross-view pair
    paths = [sorted(folder.glob(f"{pid}_{cam}_*.jpg"))[0] for pid in people for cam in "ab"]
    images = np.stack([preprocess(load_rgb(p), PreprocessConfig()) for p in paths])
    torch.set_num_threads(1)
    with torch.no_grad():
        features = torch.nn.functional.normalize(network(torch.from_numpy(images)), dim=1).numpy()
    similarity = features @ features.T
    ids = np.repeat(np.arange(len(people)), 2)
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
    different = ids[:, None] != ids[None, :]
    # averaged over the 20 people, a person's other view is closer than other people's photos
    assert similarity[same].mean() > similarity[different].mean() + 0.05
    # and for most people singly (their pair above their mean to everyone else)
    pair = similarity[same].reshape(len(people), 2)[:, 0]
    others = np.array([similarity[2 * i][different[2 * i]].mean() for i in range(len(people))])
    assert (pair > others).sum() >= 15
