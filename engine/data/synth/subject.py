"""Subjects: fixed draws of appearance parameters, keyed by subject id.

A subject's parameters come from a counter-based hash of (world seed, subject id, parameter index), so the
same subject looks the same in every batch, at every gaze and head pose, whatever else is in the batch and on
whichever device it is drawn. Subject ids are split into disjoint train / validation / test ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from engine.strip import DEFAULT_EYE_MODEL

_MASK32 = 0xFFFFFFFF


def hash_uniform(key: Tensor, index: int, seed: int) -> Tensor:
    """Uniform [0, 1) floats from integer keys, a parameter index and a seed (stateless, vectorised).

    Integer hash with multipliers below 2**31 so that every product fits in int64 (torch has no uint32 maths).
    """
    x = (key.to(torch.int64) * 0x9E37 + index * 0x3C6EF + seed * 0x1F123BB5) & _MASK32
    for _ in range(3):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    x = (x >> 16) ^ x
    return (x & 0xFFFFFF).to(torch.float32) / float(1 << 24)


class Split(StrEnum):
    """Which subjects a sampler draws from; the ranges never overlap."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class SubjectPool:
    """Sizes of the three disjoint subject-id ranges: train ids first, then validation, then test."""

    train: int = 20000
    val: int = 500
    test: int = 500

    def id_range(self, split: Split) -> tuple[int, int]:
        """Half-open id range ``[start, stop)`` of a split."""
        starts = {Split.TRAIN: 0, Split.VAL: self.train, Split.TEST: self.train + self.val}
        sizes = {Split.TRAIN: self.train, Split.VAL: self.val, Split.TEST: self.test}
        if sizes[split] <= 0:
            raise ValueError(f"the {split.value} split has no subjects")
        return starts[split], starts[split] + sizes[split]

    def split_of(self, subject: Tensor) -> list[Split]:
        """The split each subject id belongs to."""
        out = []
        for s in subject.tolist():
            for split in Split:
                lo, hi = self.id_range(split)
                if lo <= s < hi:
                    out.append(split)
                    break
            else:
                raise ValueError(f"subject id {s} is outside every split")
        return out


# Skin albedo (linear RGB) along the range of human skin colours, light to dark: a piecewise-linear path
# through measured-looking reflectances, so a uniform draw covers the whole range.
_SKIN_PATH = torch.tensor(
    [
        [0.78, 0.58, 0.48],
        [0.70, 0.48, 0.36],
        [0.58, 0.38, 0.26],
        [0.44, 0.27, 0.17],
        [0.28, 0.16, 0.10],
        [0.15, 0.085, 0.055],
        [0.085, 0.05, 0.035],
    ]
)
# Iris colours (outer, inner) in linear RGB: dark brown, brown, amber, hazel, green, blue, grey-blue, grey.
_IRIS_OUTER = torch.tensor(
    [
        [0.035, 0.018, 0.010],
        [0.080, 0.040, 0.018],
        [0.150, 0.085, 0.030],
        [0.090, 0.080, 0.035],
        [0.060, 0.095, 0.050],
        [0.080, 0.130, 0.190],
        [0.110, 0.135, 0.160],
        [0.120, 0.120, 0.115],
    ]
)
_IRIS_INNER = torch.tensor(
    [
        [0.025, 0.012, 0.007],
        [0.060, 0.028, 0.012],
        [0.200, 0.110, 0.030],
        [0.160, 0.090, 0.030],
        [0.130, 0.100, 0.035],
        [0.110, 0.120, 0.110],
        [0.150, 0.140, 0.110],
        [0.140, 0.130, 0.110],
    ]
)
# Population weights of the iris colours (brown eyes are the most common).
_IRIS_WEIGHTS = torch.tensor([0.26, 0.24, 0.06, 0.10, 0.07, 0.14, 0.07, 0.06])
# Hair colours for brows and lashes, linear RGB: black, dark brown, brown, auburn, blond, grey.
_HAIR = torch.tensor(
    [
        [0.012, 0.010, 0.009],
        [0.030, 0.020, 0.014],
        [0.070, 0.045, 0.028],
        [0.110, 0.050, 0.025],
        [0.250, 0.190, 0.110],
        [0.200, 0.200, 0.200],
    ]
)
_HAIR_WEIGHTS = torch.tensor([0.35, 0.30, 0.15, 0.05, 0.10, 0.05])
# Glasses rim colours, linear RGB: black, tortoise brown, dark metal, silver, gold, transparent-ish grey.
_RIM = torch.tensor(
    [
        [0.015, 0.015, 0.015],
        [0.090, 0.045, 0.020],
        [0.060, 0.060, 0.065],
        [0.350, 0.350, 0.360],
        [0.400, 0.280, 0.120],
        [0.200, 0.190, 0.180],
    ]
)


@dataclass
class Appearance:
    """Per-subject appearance parameters, each a tensor with a leading batch dimension (mm, linear RGB)."""

    subject: Tensor
    ipd: Tensor  # B
    eyeball_radius: Tensor  # B
    shell_axes: Tensor  # B x 3
    nasal_uv: Tensor  # B x 2
    temporal_uv: Tensor  # B x 2
    # lid heights above/below the corner line at a level gaze, in shell-v units (mm / 15): the upper lid sits
    # 4-6 mm above the pupil centre (margin-reflex distance), covering the top of the iris as in most faces
    lid_upper: Tensor  # B
    lid_lower: Tensor  # B
    lid_peak: Tensor  # B, where along the opening the upper lid peaks (-1 nasal .. 1 temporal)
    iris_radius: Tensor  # B
    pupil_scale: Tensor  # B
    iris_outer: Tensor  # B x 3
    iris_inner: Tensor  # B x 3
    iris_phase: Tensor  # B x 4, texture phases
    sclera: Tensor  # B x 3
    vessels: Tensor  # B
    skin: Tensor  # B x 3
    skin_texture: Tensor  # B, strength of the low-frequency texture
    tex_offset: Tensor  # B x 2, where this subject reads the shared noise textures
    lid_tint: Tensor  # B x 3, multiplier on the skin for the eyelids
    eyeliner: Tensor  # B
    socket_depth: Tensor  # B
    brow_height: Tensor  # B
    brow_thickness: Tensor  # B
    brow_density: Tensor  # B
    brow_arch: Tensor  # B
    hair: Tensor  # B x 3
    lash_length: Tensor  # B
    lash_density: Tensor  # B
    glasses: Tensor  # B bool
    glasses_size: Tensor  # B x 2, lens half-width and half-height
    glasses_shape: Tensor  # B, superellipse exponent (2 round .. 6 rectangular)
    glasses_rim: Tensor  # B, rim width in mm
    glasses_rim_color: Tensor  # B x 3
    glasses_tint: Tensor  # B x 3
    glasses_power: Tensor  # B, lens power in dioptres (negative minifies)
    glasses_offset: Tensor  # B x 2, frame centre offset (x spread, y)
    glasses_coating: Tensor  # B x 3, colour of the anti-reflective coating's reflection

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    def index(self, rows: Tensor) -> Appearance:
        """The subjects at ``rows``."""
        return Appearance(**{k: v[rows] for k, v in vars(self).items()})


def _pick(table: Tensor, u: Tensor, weights: Tensor | None = None) -> Tensor:
    """Rows of ``table`` chosen by uniforms ``u`` (optionally with population weights)."""
    if weights is None:
        idx = (u * table.shape[0]).long().clamp_max(table.shape[0] - 1)
    else:
        cdf = (weights.cumsum(0) / weights.sum()).to(u.device)
        idx = torch.searchsorted(cdf, u.contiguous()).clamp_max(table.shape[0] - 1)
    return table.to(u.device)[idx]


def _skin_colour(tone: Tensor) -> Tensor:
    """Linear skin albedo ``B x 3`` for tones in [0, 1] (0 lightest, 1 darkest)."""
    path = _SKIN_PATH.to(tone.device)
    pos = tone * (path.shape[0] - 1)
    lo = pos.floor().long().clamp_max(path.shape[0] - 2)
    frac = (pos - lo.float()).unsqueeze(-1)
    return path[lo] * (1 - frac) + path[lo + 1] * frac


def draw_subjects(subject: Tensor, world_seed: int = 0) -> Appearance:
    """The appearance of each subject id in ``subject`` (1-D int64 tensor); same id ⇒ same appearance."""
    if subject.ndim != 1:
        raise ValueError(f"subject ids must be a 1-D tensor, got shape {tuple(subject.shape)}")
    counter = iter(range(1000))

    def u(n: int = 1) -> Tensor:
        cols = [hash_uniform(subject, next(counter), world_seed) for _ in range(n)]
        return cols[0] if n == 1 else torch.stack(cols, dim=-1)

    def rng(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * u()

    model = DEFAULT_EYE_MODEL
    base_axes = torch.tensor(model.shell_axes_mm, device=subject.device)
    shell_axes = base_axes * (0.93 + 0.14 * u(3))
    nu, nv = model.nasal_corner_uv
    tu, tv = model.temporal_corner_uv
    nasal_uv = torch.stack((nu + 0.05 * (u() - 0.5), nv + 0.08 * (u() - 0.5)), dim=-1)
    # canthal tilt varies a lot between people (and populations): the temporal corner's height
    temporal_uv = torch.stack((tu + 0.05 * (u() - 0.5), tv - 0.10 * (u() - 0.35)), dim=-1)

    tone = u() ** 0.9
    skin = _skin_colour(tone) * (1.0 + 0.12 * (u(3) - 0.5))  # undertone: a little independent per channel
    hair_u = u()
    # darker skin tones come mostly with dark hair; keep some independence
    hair = _pick(_HAIR, (hair_u * (1.0 - 0.7 * tone)).clamp(0, 0.999), _HAIR_WEIGHTS)
    iris_u = u()
    iris_pick = (iris_u * (1.0 - 0.5 * tone)).clamp(0, 0.999)
    iris_outer = _pick(_IRIS_OUTER, iris_pick, _IRIS_WEIGHTS) * (0.8 + 0.4 * u(3))
    iris_inner = _pick(_IRIS_INNER, iris_pick, _IRIS_WEIGHTS) * (0.8 + 0.4 * u(3))

    glasses = u() < 0.35
    return Appearance(
        subject=subject,
        ipd=rng(55.0, 70.0),
        eyeball_radius=rng(11.5, 12.5),
        shell_axes=shell_axes,
        nasal_uv=nasal_uv,
        temporal_uv=temporal_uv,
        lid_upper=rng(0.27, 0.40),
        lid_lower=rng(0.28, 0.40),
        lid_peak=rng(-0.35, 0.15),
        iris_radius=rng(5.6, 6.3),
        pupil_scale=rng(0.8, 1.2),
        iris_outer=iris_outer,
        iris_inner=iris_inner,
        iris_phase=u(4) * (2 * math.pi),
        sclera=torch.tensor([0.80, 0.74, 0.68], device=subject.device) * (0.85 + 0.2 * u(3)),
        vessels=rng(0.0, 1.0) ** 2,
        skin=skin.clamp(0.02, 0.9),
        skin_texture=rng(0.04, 0.16),
        tex_offset=u(2),
        lid_tint=torch.stack((torch.ones_like(tone), 0.86 + 0.1 * u(), 0.84 + 0.1 * u()), dim=-1),
        eyeliner=(u() < 0.15).float() * rng(0.3, 0.9),
        socket_depth=rng(0.3, 2.0),
        brow_height=rng(13.5, 19.0),
        brow_thickness=rng(3.0, 7.5),
        brow_density=rng(0.55, 1.0),
        brow_arch=rng(1.0, 5.0),
        hair=hair,
        lash_length=rng(0.12, 0.24),
        lash_density=rng(0.5, 1.0),
        glasses=glasses,
        glasses_size=torch.stack((rng(21.0, 28.0), rng(14.0, 21.0)), dim=-1),
        glasses_shape=rng(2.0, 6.0),
        glasses_rim=torch.where(u() < 0.55, rng(2.0, 5.0), rng(0.8, 1.6)),
        glasses_rim_color=_pick(_RIM, u()),
        glasses_tint=1.0 - torch.where(u() < 0.15, 0.35, 0.06).unsqueeze(-1) * u(3),
        glasses_power=rng(-6.0, 3.0),
        glasses_offset=torch.stack((rng(-2.0, 3.0), rng(-2.0, 3.0)), dim=-1),
        glasses_coating=torch.stack((rng(0.2, 0.6), rng(0.5, 1.0), rng(0.3, 1.0)), dim=-1),
    )
