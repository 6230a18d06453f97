"""The compiled renderer draws the same strips as the eager one.

Compiled, the pixel stage is fused into a few kernels and reads textures with explicit gathers instead of
grid_sample; both must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine.data.synth import sampler as sampler_module
from engine.data.synth.noise import SKIN_MID, NoiseBank
from engine.data.synth.sampler import (
    SynthConfig,
    SynthSampler,
    draw_blink,
    draw_lighting,
    draw_pose,
)
from engine.data.synth.scene import Render, Scene, render_scene
from engine.data.synth.subject import Appearance


def test_texture_gathers_equal_grid_sample() -> None:
    bank = NoiseBank(seed=3, size=64)
    gen = torch.Generator().manual_seed(0)
    u = (torch.rand(5, 700, generator=gen) - 0.5) * 7.0  # several periods, negative ones too
    v = (torch.rand(5, 700, generator=gen) - 0.5) * 7.0
    torch.testing.assert_close(bank._bilinear(SKIN_MID, u, v), bank.sample(SKIN_MID, u, v), atol=1e-5, rtol=0)


def test_packed_quads_hold_each_texels_neighbourhood() -> None:
    bank = NoiseBank(seed=1, size=16)
    tex = bank.textures[0]  # C x 17 x 17, wrapped border included
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        unpacked = ((bank.quads >> (16 * k)) & 0xFFFF).float() / 65535.0
        corner = tex[:, dy : dy + 16, dx : dx + 16]
        assert float((unpacked - corner).abs().max()) <= 0.5 / 65535.0 + 1e-7


def _scene_batch(sampler: SynthSampler, n: int) -> tuple[Appearance, Scene]:
    gen = torch.Generator().manual_seed(11)
    dev = torch.device("cpu")
    subject = torch.arange(n) * 37  # glasses, eyeliner and bare eyes among them
    app = sampler.renderer.appearance(subject)
    head, gaze = draw_pose(sampler.config, n, gen, dev)
    scene = Scene(
        head=head,
        gaze=gaze,
        fixation_distance=torch.full((n,), 600.0),
        blink=draw_blink(sampler.config, n, gen, dev),
        **draw_lighting(n, gen, dev),
    )
    return app, scene


def _assert_same_image(a: torch.Tensor, b: torch.Tensor) -> None:
    """Fused maths rounds differently, so a pixel on a hard edge (rim, lid margin) may fall on the other side;
    everything else agrees to 1e-3."""
    diff = (a - b).abs()
    assert float((diff > 1e-3).float().mean()) < 1e-3
    assert float(diff.max()) < 0.05


def test_compiled_renderer_matches_eager() -> None:
    """torch.compile of the whole pixel stage (about a minute to compile on 2 cores) draws the same strips."""
    sampler = SynthSampler(SynthConfig())
    app, scene = _scene_batch(sampler, 10)
    assert 0 < int(app.glasses.sum()) < 10  # both compiled variants: with spectacles and without
    geo = sampler.config.geometry
    plain = render_scene(app, scene, geo, 26, 102, sampler.renderer.noise)
    fast = render_scene(app, scene, geo, 26, 102, sampler.renderer.noise, compiled=True)
    _assert_same_image(fast.radiance, plain.radiance)
    assert float((fast.mask - plain.mask).abs().mean()) < 1e-3  # a rare silhouette pixel may flip
    torch.testing.assert_close(fast.pupil_px, plain.pupil_px)
    torch.testing.assert_close(fast.openness, plain.openness)
    # a second size and batch reuses the compiled code (dynamic shapes) and still agrees
    rows = torch.arange(4)
    small_app, small_scene = app.index(rows), scene.index(rows)
    again = render_scene(small_app, small_scene, geo, 32, 128, sampler.renderer.noise, compiled=True)
    ref = render_scene(small_app, small_scene, geo, 32, 128, sampler.renderer.noise)
    _assert_same_image(again.radiance, ref.radiance)


def test_a_compiler_failure_falls_back_to_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = sampler_module.render_scene

    def no_compiler(*args: Any, compiled: bool = False, **kwargs: Any) -> Render:
        if compiled:
            raise RuntimeError("no C++ compiler")
        return real(*args, **kwargs)

    monkeypatch.setattr(sampler_module, "render_scene", no_compiler)
    sampler = SynthSampler(SynthConfig(), batch_size=3, compiled=True)
    batch = sampler.pairs(0)
    assert not sampler.renderer.compiled
    assert "runs eagerly" in caplog.text
    # the failure comes before any random draw of the batch, so it is the eager sampler's batch exactly
    torch.testing.assert_close(batch.source.image, SynthSampler(SynthConfig(), batch_size=3).pairs(0).source.image)


def test_wearers_and_others_rendered_together_are_what_each_is_alone() -> None:
    sampler = SynthSampler(SynthConfig())
    app, scene = _scene_batch(sampler, 10)
    geo = sampler.config.geometry
    together = render_scene(app, scene, geo, 20, 80, sampler.renderer.noise)
    for glasses in (True, False):
        rows = (app.glasses == glasses).nonzero(as_tuple=True)[0]
        alone = render_scene(app.index(rows), scene.index(rows), geo, 20, 80, sampler.renderer.noise)
        torch.testing.assert_close(together.radiance[rows], alone.radiance)
        torch.testing.assert_close(together.mask[rows], alone.mask)
        torch.testing.assert_close(together.pupil_px[rows], alone.pupil_px)
        torch.testing.assert_close(together.openness[rows], alone.openness)
