"""Settings validation: bad values fail where they are set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.runtime.settings import Mode, Settings


def test_defaults_target_the_camera_at_full_strength() -> None:
    s = Settings()
    assert s.mode is Mode.CORRECT
    assert s.target_deg == (0.0, 0.0)
    assert s.strength == 1.0
    assert s.max_faces == 1


def test_mode_parses_from_its_name() -> None:
    assert Settings.model_validate({"mode": "estimate"}).mode is Mode.ESTIMATE


@pytest.mark.parametrize(
    "field",
    [
        {"strength": 1.5},
        {"strength": -0.1},
        {"target_pitch_deg": 45.0},
        {"target_yaw_deg": -31.0},
        {"max_faces": 0},
        {"mode": "sideways"},
        {"natural_look_away_max_deg": 6.0},
        {"natural_look_away_interval": (350, 100)},
        {"look_away_start_deg": 30.0, "look_away_end_deg": 20.0},
        {"head_start_deg": 25.0, "head_end_deg": 25.0},
        {"ramp_frames": 0},
        {"unknown_field": 1},
    ],
)
def test_out_of_range_values_are_refused(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(field)


def test_settings_are_immutable() -> None:
    with pytest.raises(ValidationError):
        Settings().strength = 0.5  # type: ignore[misc]


def test_round_trip_through_json() -> None:
    s = Settings(target_pitch_deg=-5.0, strength=0.4, natural_look_away=True)
    assert Settings.model_validate_json(s.model_dump_json()) == s
