from __future__ import annotations

import numpy as np
import pytest

from core.model.attributes import PERSON_ATTRIBUTES
from core.model.inference import PredictedAttribute
from core.model.network import Modality
from training.data import ImageRecord
from training.evaluate import attribute_accuracy, cmc_map, large_gallery, pool_by_style, summarise


def test_cmc_map_hand_computed():
    # q0 = (1, 0), id a: similarities g0 .6 (a), g1 .8 (b), g2 0 (a) -> ranking b a a
    #   first match at rank 2; AP = (1/2 + 2/3) / 2 = 7/12
    # q1 = (0, 1), id b: similarities g0 .8 (a), g1 .6 (b), g2 1 (a) -> ranking a a b
    #   first match at rank 3; AP = 1/3
    # q2, id c, is not in the gallery: skipped
    query = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    gallery = np.array([[0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
    result = cmc_map(query, ["a", "b", "c"], gallery, ["a", "b", "a"], ranks=(1, 2, 3))
    assert result["R1"] == 0.0 and result["R2"] == 50.0 and result["R3"] == 100.0
    assert result["mAP"] == pytest.approx(100 * (7 / 12 + 1 / 3) / 2)
    # margin: best true match minus best wrong one: q0 .6 - .8, q1 .6 - 1
    assert result["margin"] == pytest.approx(100 * (-0.2 - 0.4) / 2)
    assert result["queries"] == 2


def test_cmc_perfect_and_rank_beyond_gallery():
    x = np.eye(3)
    result = cmc_map(x, [1, 2, 3], x, [1, 2, 3])
    assert result["R1"] == result["R20"] == result["mAP"] == 100.0
    assert result["margin"] == pytest.approx(100.0)  # saturated ranks, the margin still measures


def test_attribute_accuracy():
    records = [
        ImageRecord("a", "1", Modality.PHOTO, {"gender": "male", "hat": "no"}),
        ImageRecord("b", "2", Modality.PHOTO, {"gender": "female"}),
        ImageRecord("c", "3", Modality.PHOTO, None),
    ]
    predicted = [
        {"gender": PredictedAttribute("male", 0.9), "hat": PredictedAttribute("yes", 0.6)},
        {"gender": PredictedAttribute("male", 0.7), "hat": PredictedAttribute("no", 0.6)},
        {"gender": PredictedAttribute("male", 0.7), "hat": PredictedAttribute("no", 0.6)},
    ]
    assert attribute_accuracy(predicted, records, PERSON_ATTRIBUTES) == {"gender": 50.0, "hat": 0.0}
    assert attribute_accuracy([{}, {}, {}], records, PERSON_ATTRIBUTES) == {}


def test_summarise():
    out = summarise([{"R1": 10.0}, {"R1": 20.0}], keys=("R1",))
    assert out == {"R1": {"mean": 15.0, "std": 5.0}}


def test_pool_by_style_weights_each_split_by_its_queries():
    split_1 = {
        "by_style": {"a": {"queries": 1, "R1": 100.0, "mAP": 50.0}, "b": {"queries": 2, "R1": 50.0, "mAP": 40.0}}
    }
    split_2 = {"by_style": {"a": {"queries": 3, "R1": 0.0, "mAP": 10.0}}}
    pooled = pool_by_style([split_1, split_2, {}], keys=("R1", "mAP"))
    assert list(pooled) == ["a", "b"]
    assert pooled["a"] == {"queries": 4, "R1": 25.0, "mAP": pytest.approx(20.0)}
    assert pooled["b"] == {"queries": 2, "R1": 50.0, "mAP": 40.0}


def test_large_gallery_against_a_hand_count():
    # 2 queries, 3 gallery photos, 2 distractors with controlled embeddings.
    # q0 (id a) = (1, 0): gallery a .8, b .6, c 0 -> rank 1, AP 1
    # q1 (id b) = (0, 1): gallery a .6, b .8, c -1 -> rank 1, AP 1
    # distractor d0 = (.96, .28): above a's photo for q0 (.96 > .8), below b's for q1 (.28 < .8)
    # distractor d1 = (-1, 0): below everything for both
    # with them: q0 rank 2, AP 1/2; q1 rank 1, AP 1 -> R1 50, R2 100, mAP 75
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[0.8, 0.6], [0.6, 0.8], [0.0, -1.0]])
    distractors = np.array([[0.96, 0.28], [-1.0, 0.0]])
    plain = cmc_map(query, ["a", "b"], gallery, ["a", "b", "c"], ranks=(1, 2))
    assert plain["R1"] == 100.0 and plain["mAP"] == 100.0
    large = large_gallery(query, ["a", "b"], gallery, ["a", "b", "c"], distractors)
    assert large["R1"] == 50.0 and large["R5"] == 100.0 and large["mAP"] == pytest.approx(75.0)
    assert large["queries"] == 2 and large["gallery"] == 5  # distractors join the gallery, never the queries
    # a distractor never counts as a match, even for a query whose id looks like a distractor's
    assert large_gallery(query[:1], ["a"], gallery[:0], [], distractors)["queries"] == 0
