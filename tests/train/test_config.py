"""The training config: JSON round trips (nested dataclasses and tuples) and validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.data.synth import SubjectPool
from engine.model import RedirectorConfig
from engine.train.config import LossWeights, TrainConfig, from_json_dict, to_json_dict
from engine.train.estimator import EstimatorConfig, EstimatorTrainConfig
from tests.train.helpers import TINY_MODEL, TINY_SYNTH


def test_default_config_round_trips_through_json() -> None:
    config = TrainConfig()
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.variant == "+GHT+SG"


def test_customised_nested_config_round_trips_through_a_file(tmp_path: Path) -> None:
    config = TrainConfig(
        ght=False,
        sg=False,
        betas=(0.9, 0.99),
        weights=LossWeights(reconstruction=100.0, sg=0.0),
        synth=replace(TINY_SYNTH, pool=SubjectPool(train=10, val=2, test=3), render_scales=(0.5, 1.0)),
        model=TINY_MODEL,
        estimator_checkpoint="a.pt",
        judge_checkpoint=None,
    )
    path = tmp_path / "run" / "config.json"
    config.save(path)
    loaded = TrainConfig.load(path)
    assert loaded == config
    assert isinstance(loaded.model.encoder_channels, tuple)  # JSON lists come back as tuples
    assert loaded.variant == "STED"
    # JSON integers are accepted for float fields
    data = json.loads(path.read_text())
    data["lr"] = 1
    assert TrainConfig.from_dict(data).lr == 1.0


def test_missing_keys_take_defaults_and_unknown_keys_raise() -> None:
    assert TrainConfig.from_dict({"steps": 7}) == TrainConfig(steps=7)
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"stpes": 7})
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"weights": {"l1": 3.0}})
    with pytest.raises(TypeError, match="expected an integer"):
        TrainConfig.from_dict({"steps": True})


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="strip size"):
        TrainConfig(model=RedirectorConfig(height=32, width=64))
    with pytest.raises(ValueError, match="batch_size >= 2"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="non-negative"):
        LossWeights(ght=-1.0)


def test_estimator_config_round_trips() -> None:
    config = EstimatorTrainConfig(estimator=EstimatorConfig(arch="b", width=16), loss="l2", synth=TINY_SYNTH)
    assert from_json_dict(EstimatorTrainConfig, json.loads(json.dumps(to_json_dict(config)))) == config
    with pytest.raises(ValueError, match="not one of"):
        from_json_dict(EstimatorConfig, {"arch": "c"})
