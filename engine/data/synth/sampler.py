"""The synthetic data source: draws subjects, scenes and cameras, renders pairs of labelled eye strips.

A pair shows one subject under one lighting and camera at two gazes and head poses, which is what the
redirector trains on (source -> target). Everything is deterministic for a given seed and batch index, on CPU
and on CUDA, and the three subject splits never share a subject.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from torch import Tensor

from engine.data.batch import PairBatch, StripBatch
from engine.data.synth.camera import CameraParams, draw_sensor_noise, expose, resample
from engine.data.synth.denormals import flush_denormals
from engine.data.synth.memory import keep_freed_memory
from engine.data.synth.noise import NoiseBank
from engine.data.synth.scene import Render, Scene, render_scene
from engine.data.synth.subject import Appearance, Split, SubjectPool, draw_subjects, hash_uniform
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CLOSED_BELOW = 0.1  # blink values under this are labelled "closed"


def compile_by_default(device: torch.device | str) -> bool:
    """Whether the renderer should run compiled on ``device``: on a CPU yes, on CUDA no.

    Measured (``bench/synth_renderer.py``): on the 2-core CPU compiling takes 257 s with every cache empty (79 s
    with Inductor's on-disk cache warm) and lifts 173 to 1,131 strips/s (``docs/bench/synth_cpu.json``, session 7),
    paid back after about 52,000 strips (16,000 warm); on an H200 (session 4's renderer) it takes about 70 s and
    lifts 24,854 to 60,572 strips/s at 2,048 pairs a batch, paid back only after about three million strips, far
    more than a training run's cache. Long live-rendering GPU runs should ask for it.
    """
    return torch.device(device).type == "cpu"


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes the synthetic distribution. Saved with every training run."""

    geometry: StripGeometry = DEFAULT_STRIP
    world_seed: int = 0  # fixes the subjects and the shared textures (not the sampling order)
    pool: SubjectPool = field(default_factory=SubjectPool)
    gaze_range_deg: float = 30.0  # gaze pitch and yaw within +-this (normalised camera frame)
    head_range_deg: float = 25.0  # head pitch and yaw within +-this
    eye_in_head_deg: tuple[float, float] = (30.0, 40.0)  # most the eye turns in the head (pitch, yaw)
    fixation_mm: tuple[float, float] = (400.0, 1200.0)
    closed_fraction: float = 0.04
    blink_fraction: float = 0.08
    pair_same_blink: bool = True  # targets keep the source's lid closure: only gaze moves the lids
    # targets keep the source's head pose, as in the corrector, which moves only the gaze (the target gaze is
    # clamped to the eye's range in that head); off for training, which learns to move the head too
    pair_same_head: bool = False
    # sensor resolution relative to the strip: 0.4 is what a 640 x 480 webcam gives at 60 cm, 0.85 a 720p one
    render_scales: tuple[float, ...] = (0.4, 0.5, 0.625, 0.75, 1.0)
    camera_effects: bool = True
    noise_texture_size: int = 128

    def __post_init__(self) -> None:
        if not 0.0 <= self.closed_fraction + self.blink_fraction <= 1.0:
            raise ValueError("closed_fraction + blink_fraction must lie in [0, 1]")
        if not self.render_scales or any(not 0.1 <= s <= 1.0 for s in self.render_scales):
            raise ValueError(f"render_scales must be in [0.1, 1], got {self.render_scales}")


def _uniform(gen: torch.Generator, device: torch.device, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=gen, device=device)


def _span(gen: torch.Generator, device: torch.device, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * _uniform(gen, device, *shape)


def draw_pose(config: SynthConfig, n: int, gen: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor]:
    """Head and gaze (pitch, yaw) ``n x 2`` each: both within their ranges, the eye within its range in the head.

    Rejection sampling over a fixed number of candidates keeps this vectorised and deterministic.
    """
    k = 16
    g = math.radians(config.gaze_range_deg)
    h = math.radians(config.head_range_deg)
    head = (2 * _uniform(gen, device, n, k, 2) - 1) * h
    gaze = (2 * _uniform(gen, device, n, k, 2) - 1) * g
    limit = torch.tensor([math.radians(a) for a in config.eye_in_head_deg], device=device)
    ok = ((gaze - head).abs() <= limit).all(dim=-1)
    first = ok.float().argmax(dim=1)  # the first acceptable candidate (0 if none, then fixed below)
    rows = torch.arange(n, device=device)
    head, gaze = head[rows, first], gaze[rows, first]
    none = ~ok.any(dim=1)
    head = torch.where(none.unsqueeze(-1), gaze * 0.5, head)
    return head, gaze


def _eye_in_head(config: SynthConfig, head: Tensor, gaze: Tensor) -> Tensor:
    """``gaze`` B x 2 clamped to where the eye can turn in ``head`` (``eye_in_head_deg`` either way)."""
    limit = torch.tensor([math.radians(a) for a in config.eye_in_head_deg], device=head.device)
    return torch.minimum(torch.maximum(gaze, head - limit), head + limit)


def _colour_temperature(kelvin: Tensor) -> Tensor:
    """Approximate RGB of a light of the given colour temperature, normalised to unit luminance."""
    ks = torch.tensor([2700.0, 4000.0, 5500.0, 6500.0, 7500.0], device=kelvin.device)
    rgb = torch.tensor(
        [[1.0, 0.72, 0.45], [1.0, 0.85, 0.70], [1.0, 0.96, 0.92], [0.95, 0.98, 1.0], [0.88, 0.94, 1.0]],
        device=kelvin.device,
    )
    pos = torch.searchsorted(ks, kelvin.contiguous()).clamp(1, len(ks) - 1)
    lo, hi = ks[pos - 1], ks[pos]
    t = ((kelvin - lo) / (hi - lo)).clamp(0.0, 1.0).unsqueeze(-1)
    out = rgb[pos - 1] * (1 - t) + rgb[pos] * t
    lum = (out * torch.tensor([0.2126, 0.7152, 0.0722], device=kelvin.device)).sum(-1, keepdim=True)
    return out / lum


def draw_lighting(n: int, gen: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    """Lighting of ``n`` scenes: a directional light in front and above, hemispherical ambient, a screen."""
    az = _span(gen, device, -1.2, 1.2, n)
    el = _span(gen, device, -0.2, 1.0, n)
    light_dir = torch.stack((torch.sin(az) * torch.cos(el), -torch.sin(el), -torch.cos(az) * torch.cos(el)), -1)
    tint = _colour_temperature(_span(gen, device, 2700.0, 7500.0, n))
    amb_tint = _colour_temperature(_span(gen, device, 4000.0, 7500.0, n))
    strength = _span(gen, device, 0.4, 1.4, n)
    ambient = amb_tint * _span(gen, device, 0.15, 0.6, n).unsqueeze(-1)
    brightness = strength + ambient.mean(-1)
    return {
        "light_dir": light_dir,
        "light_color": tint * strength.unsqueeze(-1),
        "ambient": ambient,
        "ambient_below": ambient * _span(gen, device, 0.3, 0.7, n).unsqueeze(-1),
        # pupils close in bright light
        "pupil_radius": (3.6 - 1.3 * brightness + _span(gen, device, -0.4, 0.4, n)).clamp(1.3, 3.8),
        "screen_glow": _span(gen, device, 0.0, 1.0, n) * (_uniform(gen, device, n) < 0.6).float(),
    }


def draw_blink(config: SynthConfig, n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """Lid closure per image: mostly open, some partial blinks, a few closed eyes."""
    u = _uniform(gen, device, n)
    closed = _span(gen, device, 0.0, 0.08, n)
    partial = _span(gen, device, 0.15, 0.85, n)
    open_ = _span(gen, device, 0.93, 1.0, n)
    out = torch.where(u < config.closed_fraction + config.blink_fraction, partial, open_)
    return torch.where(u < config.closed_fraction, closed, out)


def draw_camera(config: SynthConfig, n: int, gen: torch.Generator, device: torch.device) -> CameraParams:
    """Webcam settings of ``n`` images (exposure is scaled later by auto-exposure)."""
    quality = _span(gen, device, 35.0, 95.0, n).round()
    quality = torch.where(_uniform(gen, device, n) < 0.2, torch.full_like(quality, 100.0), quality)
    cam = CameraParams(
        exposure=_span(gen, device, 0.75, 1.3, n),
        white_balance=1.0 + _span(gen, device, -0.08, 0.08, n, 3),
        blur=_span(gen, device, 0.0, 1.1, n),
        read_noise=_span(gen, device, 0.002, 0.02, n),
        shot_noise=_span(gen, device, 0.0, 0.01, n),
        jpeg_quality=quality,
    )
    if not config.camera_effects:
        cam = neutral_camera(n, device)
    return cam


def neutral_camera(n: int, device: torch.device | str) -> CameraParams:
    """A camera that adds nothing: no blur, no noise, no compression, neutral white balance."""
    ones = torch.ones(n, device=device)
    return CameraParams(
        exposure=ones,
        white_balance=torch.ones(n, 3, device=device),
        blur=torch.zeros(n, device=device),
        read_noise=torch.zeros(n, device=device),
        shot_noise=torch.zeros(n, device=device),
        jpeg_quality=torch.full((n,), 100.0, device=device),
    )


def _auto_exposure(radiance: Tensor, mask: Tensor) -> Tensor:
    """Gain that brings the skin (outside the eyes) toward a mid-grey, only halfway in log terms: webcam AE
    brightens dark skin and darkens light skin but does not erase the difference."""
    lum = (radiance * torch.tensor([0.2126, 0.7152, 0.0722], device=radiance.device).view(1, 3, 1, 1)).sum(1)
    w = 1.0 - mask[:, 0]
    mean = (lum * w).sum((1, 2)) / w.sum((1, 2)).clamp_min(1.0)
    return (0.2 / mean.clamp_min(1e-3)) ** 0.5


@dataclass
class Rendered:
    """A rendered batch and what the renderer knows about it beyond the batch labels."""

    strips: StripBatch
    pupil_px: Tensor  # B x 2 x 2
    glasses: Tensor  # B bool
    scale: Tensor  # B, the sensor's resolution relative to the strip (one of ``SynthConfig.render_scales``)
    scene: Scene  # what was rendered (the subjects' appearance follows from ``strips.subject``)

    def index(self, rows: Tensor) -> Rendered:
        """The images at ``rows``."""
        return Rendered(
            self.strips.index(rows), self.pupil_px[rows], self.glasses[rows], self.scale[rows], self.scene.index(rows)
        )


class SynthRenderer:
    """Renders strips for given subjects, scenes and cameras (the deterministic core of the sampler)."""

    def __init__(
        self, config: SynthConfig | None = None, device: torch.device | str = "cpu", compiled: bool = False
    ) -> None:
        self.config = config or SynthConfig()
        self.device = torch.device(device)
        self.noise = NoiseBank(self.config.world_seed, self.config.noise_texture_size, self.device)
        if self.device.type == "cpu":
            # every batch allocates tens of large tensors; reused memory spares page-faulting each one in anew
            keep_freed_memory()
        # torch.compile fuses the per-pixel shading (4 to 5 times faster on a CPU; the first batch of a process
        # pays for the compilation, and it falls back to eager if the compiler is unavailable)
        self.compiled = compiled

    def appearance(self, subject: Tensor) -> Appearance:
        """The appearance of subject ids (1-D int64) in this world."""
        return draw_subjects(subject.to(self.device), self.config.world_seed)

    def render(
        self,
        app: Appearance,
        scene: Scene,
        camera: CameraParams,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        exposure_group: Tensor | None = None,
    ) -> tuple[StripBatch, Render]:
        """Render at ``scale`` of the strip resolution, apply the camera, resample to the strip size.

        Auto-exposure is metered per image, or, with ``exposure_group`` (B int64 group ids in [0, B)), on the first
        image of each group and shared by the group: a pair's target is taken with its source's exposure.
        """
        developed, out = self.develop(app, scene, camera, scale, generator, exposure_group)
        geo = self.config.geometry
        strips = StripBatch(
            image=resample(developed, geo.height, geo.width),
            gaze=scene.gaze,
            head=scene.head,
            openness=out.openness,
            closed=scene.blink < CLOSED_BELOW,
            subject=app.subject,
            mask=resample(out.mask, geo.height, geo.width).clamp(0.0, 1.0),
            pupil=out.pupil_px,
        )
        return strips, out

    def develop(
        self,
        app: Appearance,
        scene: Scene,
        camera: CameraParams,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        exposure_group: Tensor | None = None,
    ) -> tuple[Tensor, Render]:
        """What :meth:`render` does before resampling to the strip size: the webcam images at the sensor's
        resolution (B x 3 x h x w) and the render (radiance, eyeball mask and labels) at that resolution."""
        geo = self.config.geometry
        h = max(8, round(geo.height * scale))
        w = max(8, round(geo.width * scale))
        noise = draw_sensor_noise((len(scene), 3, h, w), generator, self.device)  # drawn before anything compiles
        # The shading evaluates exp() of large negative numbers everywhere; their denormal results do not matter
        # to the image and are slow unless flushed to zero, on every thread (see engine/data/synth/denormals.py).
        with flush_denormals():
            out = self._compiled_or_eager(lambda compiled: self._render_scene(app, scene, h, w, compiled))
        gain = _auto_exposure(out.radiance, out.mask)
        if exposure_group is not None:
            # ids are below B, so B slots hold every group without reading the ids back (a GPU sync)
            first = torch.full((len(gain),), -1, dtype=torch.long, device=gain.device)
            rows = torch.arange(len(gain), device=gain.device)
            first = first.scatter_reduce(0, exposure_group, rows, reduce="amin", include_self=False)
            gain = gain[first[exposure_group]]
        cam = replace(camera, exposure=camera.exposure * gain)
        developed = self._compiled_or_eager(lambda compiled: expose(out.radiance, cam, noise, compiled))
        return developed, out

    def _render_scene(self, app: Appearance, scene: Scene, height: int, width: int, compiled: bool) -> Render:
        return render_scene(app, scene, self.config.geometry, height, width, self.noise, compiled=compiled)

    def _compiled_or_eager(self, run: Callable[[bool], _T]) -> _T:
        """``run(compiled=True)`` while compiling works; after any compiler failure (no C++ compiler, no Triton),
        ``run(compiled=False)`` from then on."""
        if self.compiled:
            try:
                return run(True)
            except Exception:
                logger.warning("torch.compile failed; the renderer runs eagerly (slower)", exc_info=True)
                self.compiled = False
        return run(False)


class SynthSampler:
    """Endless, reproducible batches of labelled strips or pairs from one subject split.

    Batch ``k`` of a sampler with seed ``s`` is the same on every run on the same kind of device (CPU and CUDA
    draw different random streams; subjects' appearance is the same on both); iteration yields
    :class:`PairBatch` objects. A batch's pairs are independent draws, but they come sorted by sensor scale and
    then by spectacles (wearers first): take a random subset, not the first rows, where that matters.
    """

    def __init__(
        self,
        config: SynthConfig | None = None,
        split: Split = Split.TRAIN,
        seed: int = 0,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        compiled: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.renderer = SynthRenderer(config, device, compiled)
        self.config = self.renderer.config
        self.split = split
        self.seed = seed
        self.batch_size = batch_size
        self.device = self.renderer.device
        self._next = 0

    def _generator(self, index: int) -> torch.Generator:
        key = hash_uniform(torch.tensor([index]), 7, self.seed + 1_000_003 * list(Split).index(self.split))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(key.item() * (1 << 24)) * 65537 + index)
        return gen

    def _subjects(self, n: int, gen: torch.Generator) -> Tensor:
        lo, hi = self.config.pool.id_range(self.split)
        return torch.randint(lo, hi, (n,), generator=gen, device=self.device)

    def pairs(self, index: int | None = None, batch_size: int | None = None) -> PairBatch:
        """Pair batch number ``index`` (the next one if None)."""
        return self.render_pairs(index, batch_size)[0]

    def render_pairs(
        self, index: int | None = None, batch_size: int | None = None
    ) -> tuple[PairBatch, Rendered, Rendered]:
        """Pair batch ``index`` with the renderer's extra labels for source and target."""
        if index is None:
            index, self._next = self._next, self._next + 1
        n = batch_size or self.batch_size
        gen = self._generator(index)
        dev, cfg = self.device, self.config
        subject = self._subjects(n, gen)
        app = self.renderer.appearance(subject)
        light = draw_lighting(n, gen, dev)
        head_s, gaze_s = draw_pose(cfg, n, gen, dev)
        head_t, gaze_t = draw_pose(cfg, n, gen, dev)
        if cfg.pair_same_head:  # drawn all the same, so every other draw stays as without the option
            head_t, gaze_t = head_s, _eye_in_head(cfg, head_s, gaze_t)
        blink_s = draw_blink(cfg, n, gen, dev)
        blink_t = blink_s if cfg.pair_same_blink else draw_blink(cfg, n, gen, dev)
        fix_s = _span(gen, dev, *cfg.fixation_mm, n)
        fix_t = _span(gen, dev, *cfg.fixation_mm, n)
        cam = draw_camera(cfg, n, gen, dev)
        scale_idx = torch.randint(0, len(cfg.render_scales), (n,), generator=gen, device=dev)
        src = Scene(head=head_s, gaze=gaze_s, fixation_distance=fix_s, blink=blink_s, **light)
        tgt = Scene(head=head_t, gaze=gaze_t, fixation_distance=fix_t, blink=blink_t, **light)

        # Rows are independent draws, so putting them in any order gives the same distribution. Sorted by sensor
        # scale and then spectacles, each render call takes a run of consecutive rows and writes its strips
        # straight into the batch, instead of scattering every image to its row afterwards (a copy of the
        # batch), and each run is rendered by one compiled variant (with or without spectacles).
        key = scale_idx * 2 + (~app.glasses).long()
        runs = torch.bincount(key, minlength=2 * len(cfg.render_scales)).tolist()  # rows per (scale, spectacles)
        order = torch.sort(key, stable=True).indices
        app, scale_idx = app.index(order), scale_idx[order]
        src, tgt, cam = src.index(order), tgt.index(order), _index_camera(cam, order)

        geo = cfg.geometry
        pupils = torch.empty(2, n, 2, 2, device=dev)  # the strips hold views of it, filled in below
        source = _empty_strips(n, geo.height, geo.width, src, app.subject, pupils[0])
        target = _empty_strips(n, geo.height, geo.width, tgt, app.subject, pupils[1])
        start = 0
        for k, m in enumerate(runs):
            if m == 0:
                continue
            rows = torch.arange(start, start + m, device=dev)
            both = torch.cat((rows, rows))
            # source and target in one render call: same subjects and camera, exposure metered on the source
            developed, out = self.renderer.develop(
                app.index(both),
                _cat_scenes(src.index(rows), tgt.index(rows)),
                _index_camera(cam, both),
                cfg.render_scales[k // 2],
                gen,
                exposure_group=torch.arange(m, device=dev).repeat(2),
            )
            for side, (strips, half) in enumerate(((source, slice(0, m)), (target, slice(m, 2 * m)))):
                at = slice(start, start + m)
                resample(developed[half], geo.height, geo.width, out=strips.image[at])
                resample(out.mask[half], geo.height, geo.width, out=strips.mask[at]).clamp_(0.0, 1.0)
                strips.openness[at] = out.openness[half]
                pupils[side, at] = out.pupil_px[half]
            start += m
        scales = torch.tensor(cfg.render_scales, device=dev)[scale_idx]
        return (
            PairBatch(source, target),
            Rendered(source, pupils[0], app.glasses, scales, src),
            Rendered(target, pupils[1], app.glasses, scales, tgt),
        )

    def __iter__(self) -> Iterator[PairBatch]:
        while True:
            yield self.pairs()


def _cat_scenes(a: Scene, b: Scene) -> Scene:
    return Scene(**{k: torch.cat((v, getattr(b, k))) for k, v in vars(a).items()})


def _index_camera(cam: CameraParams, rows: Tensor) -> CameraParams:
    return CameraParams(**{k: v[rows] for k, v in vars(cam).items()})


def _empty_strips(n: int, height: int, width: int, scene: Scene, subject: Tensor, pupil: Tensor) -> StripBatch:
    """A batch of ``n`` strips with the scene's labels, room for the images, masks and openness, and ``pupil``."""
    dev = subject.device
    return StripBatch(
        image=torch.empty(n, 3, height, width, device=dev),
        gaze=scene.gaze,
        head=scene.head,
        openness=torch.empty(n, device=dev),
        closed=scene.blink < CLOSED_BELOW,
        subject=subject,
        mask=torch.empty(n, 1, height, width, device=dev),
        pupil=pupil,
    )
