"""Helpers to render controlled scenes: one subject, chosen gaze and head, a camera that adds nothing."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from engine.data.batch import StripBatch
from engine.data.synth.sampler import SynthRenderer, neutral_camera
from engine.data.synth.scene import Render, Scene
from engine.data.synth.subject import Appearance


def scene_for(
    gaze_deg: list[tuple[float, float]], head_deg: list[tuple[float, float]] | None = None, blink: float = 1.0
) -> Scene:
    """Frontal soft light, fixation at 600 mm, the given gazes (and heads) in degrees."""
    n = len(gaze_deg)
    head_deg = head_deg or [(0.0, 0.0)] * n
    light = torch.tensor([0.0, -0.5, -1.0]) / math.sqrt(1.25)
    return Scene(
        head=torch.deg2rad(torch.tensor(head_deg)),
        gaze=torch.deg2rad(torch.tensor(gaze_deg)),
        fixation_distance=torch.full((n,), 600.0),
        blink=torch.full((n,), blink),
        light_dir=light.expand(n, 3).clone(),
        light_color=torch.full((n, 3), 0.9),
        ambient=torch.full((n, 3), 0.35),
        ambient_below=torch.full((n, 3), 0.2),
        pupil_radius=torch.full((n,), 2.5),
        screen_glow=torch.zeros(n),
    )


def plain_subject(renderer: SynthRenderer, subject: int, n: int) -> Appearance:
    """A subject without glasses or eyeliner, with a light grey-blue iris (so the pupil is the darkest spot)."""
    app = renderer.appearance(torch.full((n,), subject, dtype=torch.long))
    return replace(
        app,
        glasses=torch.zeros(n, dtype=torch.bool),
        eyeliner=torch.zeros(n),
        iris_outer=torch.tensor([0.25, 0.32, 0.40]).expand(n, 3).clone(),
        iris_inner=torch.tensor([0.30, 0.34, 0.36]).expand(n, 3).clone(),
    )


def render_clean(renderer: SynthRenderer, app: Appearance, scene: Scene) -> tuple[StripBatch, Render]:
    """Render at full resolution through a camera that adds nothing (no blur, noise, JPEG)."""
    return renderer.render(app, scene, neutral_camera(len(scene), "cpu"), scale=1.0)
