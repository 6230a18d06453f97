"""Evaluation of a redirector on held-out synthetic pairs, judged by estimator B.

For test-split pairs (source ``s``, target ``t`` of one subject), the model redirects ``s`` to ``t``'s gaze and
head and the judge (an estimator the redirector never trained against) reads the outputs:

* gaze / head redirection error: degrees between the target labels and the judge's gaze / head of the output;
* gaze->head / head->gaze disentanglement: redirect only the gaze and measure how far the judge's head estimate
  moves from its reading of the source (and the other way round);
* PSNR and SSIM of the full redirection against the ground-truth render of the target;
* the judge's own error on the real renders of the targets: the floor below which redirection errors cannot
  be meaningfully measured.

The gaze of a closed eye is undefined (the renderer labels about 4 % of pairs closed, and the corrector leaves
closed eyes alone), so the gaze redirection error and the judge's gaze floor are also reported over the pairs
whose eyes are open. Head errors need no such split: a head pose is as visible with closed eyes as with open ones.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.model import Redirector
from engine.model.mirror import merge_mirrored_batch, mirror_angles, mirror_strips
from engine.strip import angular_error_deg
from engine.train.estimator import Judge

# --- image metrics ------------------------------------------------------------------------------------------


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image of two B x C x H x W batches (inf for identical images)."""
    _check_pair(a, b)
    mse = (a - b).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse = 0 gives +inf, as it should


def gaussian_window(size: int = 11, sigma: float = 1.5, device: torch.device | None = None) -> Tensor:
    """A normalised 2-D Gaussian ``size x size`` kernel."""
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image of two B x C x H x W batches (Wang et al. 2004).

    Gaussian-weighted local statistics (``window`` x ``window``, ``sigma``) over the valid region, per channel,
    with ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2``; the SSIM map is averaged over pixels and channels.
    """
    _check_pair(a, b)
    channels, height, width = a.shape[1:]
    if height < window or width < window:
        raise ValueError(f"images must be at least {window} x {window} for SSIM, got {height} x {width}")
    kernel = gaussian_window(window, sigma, a.device).to(a.dtype).expand(channels, 1, window, window)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=channels)  # depthwise: every channel on its own

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    denominator = (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    return (numerator / denominator).flatten(1).mean(dim=1)


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"need two B x C x H x W batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


# --- redirection metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """Which pairs to evaluate on: ``pairs`` pairs of ``split`` in batches, from sampler seed ``seed``.

    The seed is fixed by default so that every model is scored on the very same pairs. With ``mirror`` every
    redirection is the mirror ensemble of :mod:`engine.model.mirror` (what ``mirada serve --mirror`` runs).
    """

    pairs: int = 1024
    batch_size: int = 32
    seed: int = 0
    split: Split = Split.TEST
    mirror: bool = False

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.batch_size < 1:
            raise ValueError(f"pairs and batch_size must be positive, got {self.pairs} and {self.batch_size}")


@dataclass(frozen=True)
class RedirectionMetrics:
    """Mean errors over the evaluated pairs (angles in degrees, PSNR in dB, SSIM in [-1, 1])."""

    pairs: int
    gaze_redirection_deg: float
    head_redirection_deg: float
    gaze_to_head_deg: float
    head_to_gaze_deg: float
    psnr_db: float
    ssim: float
    judge_gaze_floor_deg: float
    judge_head_floor_deg: float
    open_pairs: int  # pairs whose eyes are not labelled closed
    gaze_redirection_open_deg: float  # NaN when no pair has open eyes
    judge_gaze_floor_open_deg: float

    def to_dict(self) -> dict[str, float | int]:
        """The metrics as a flat dictionary."""
        return asdict(self)

    def to_json(self) -> str:
        """The metrics as a JSON object (an infinite PSNR is written as ``Infinity``)."""
        return json.dumps(self.to_dict(), indent=2)


# Column headers of the markdown table, per metric field.
_COLUMNS: dict[str, str] = {
    "gaze_redirection_deg": "gaze redir. (°)",
    "head_redirection_deg": "head redir. (°)",
    "gaze_to_head_deg": "gaze→head (°)",
    "head_to_gaze_deg": "head→gaze (°)",
    "psnr_db": "PSNR (dB)",
    "ssim": "SSIM",
    "judge_gaze_floor_deg": "judge gaze floor (°)",
    "judge_head_floor_deg": "judge head floor (°)",
    "gaze_redirection_open_deg": "gaze redir., open eyes (°)",
    "judge_gaze_floor_open_deg": "judge gaze floor, open eyes (°)",
}


def _cell(values: Sequence[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown_table(rows: Mapping[str, RedirectionMetrics | Sequence[RedirectionMetrics]]) -> str:
    """A markdown table with one row per name; a sequence of runs (e.g. seeds) shows mean ± std."""
    header = ["model", *_COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name, runs in rows.items():
        runs = [runs] if isinstance(runs, RedirectionMetrics) else list(runs)
        if not runs:
            raise ValueError(f"no results for {name!r}")
        cells = [name]
        for key in _COLUMNS:
            digits = 3 if key == "ssim" else 2
            cells.append(_cell([float(getattr(r, key)) for r in runs], digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class SourceRedirection:
    """Source strips B x 3 x H x W encoded once, to be redirected to any targets, as inference does: the moves go
    through the model's calibrated gain, and with ``mirror`` every redirection is the mirror ensemble of
    :mod:`engine.model.mirror` (the strips are encoded with their mirror images, 2 B in all)."""

    def __init__(self, model: Redirector, strip: Tensor, mirror: bool = False) -> None:
        self.model = model
        self.strip = strip
        self.mirror = mirror
        self.strips = torch.cat((strip, mirror_strips(strip))) if mirror else strip
        self.factors = model.encode(self.strips)

    def _targets(self, angles: Tensor | None, own: Tensor) -> Tensor:
        if angles is None:
            return own  # each strip's own label (the mirror's own, for the mirror images)
        return torch.cat((angles, mirror_angles(angles))) if self.mirror else angles

    def to(self, gaze: Tensor | None, head: Tensor | None) -> Tensor:
        """The redirected strips for target ``gaze`` and ``head`` (B x 2 each; None keeps that factor's label)."""
        factors = self.factors
        targets = self._targets(gaze, factors.gaze_pl), self._targets(head, factors.head_pl)
        decoded = self.model.decode(self.model.redirect(factors, *targets, calibrated=True), self.strips)
        return merge_mirrored_batch(self.strip, decoded).strip_out if self.mirror else decoded.strip_out


@torch.no_grad()
def evaluate_redirector(
    model: Redirector,
    judge: Judge,
    synth: SynthConfig,
    config: EvalConfig | None = None,
) -> RedirectionMetrics:
    """Score ``model`` on held-out pairs of ``synth`` with the ``judge`` (estimator B, or B mirror-averaged), on the
    model's device."""
    config = config or EvalConfig()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    judge.eval()
    sampler = SynthSampler(synth, config.split, config.seed, config.batch_size, device)
    counts = ("pairs", "open_pairs")
    open_only = ("gaze_redirection_open_deg", "judge_gaze_floor_open_deg")
    sums = {f.name: 0.0 for f in fields(RedirectionMetrics) if f.name not in counts}
    done, opened, index = 0, 0, 0
    while done < config.pairs:
        n = min(config.batch_size, config.pairs - done)
        pair = sampler.pairs(index, n)
        s, t = pair.source, pair.target
        source = SourceRedirection(model, s.image, config.mirror)
        full = source.to(t.gaze, t.head)
        gaze_only = source.to(t.gaze, None)
        head_only = source.to(None, t.head)
        read = judge(torch.cat((full, gaze_only, head_only, s.image, t.image)))
        g, h = read.gaze.split(n), read.head.split(n)  # full, gaze only, head only, source, target
        batch_sums = {
            "gaze_redirection_deg": angular_error_deg(g[0], t.gaze),
            "head_redirection_deg": angular_error_deg(h[0], t.head),
            "gaze_to_head_deg": angular_error_deg(h[1], h[3]),
            "head_to_gaze_deg": angular_error_deg(g[2], g[3]),
            "psnr_db": psnr(full, t.image),
            "ssim": ssim(full, t.image),
            "judge_gaze_floor_deg": angular_error_deg(g[4], t.gaze),
            "judge_head_floor_deg": angular_error_deg(h[4], t.head),
        }
        is_open = ~t.closed
        batch_sums["gaze_redirection_open_deg"] = batch_sums["gaze_redirection_deg"][is_open]
        batch_sums["judge_gaze_floor_open_deg"] = batch_sums["judge_gaze_floor_deg"][is_open]
        for name, values in batch_sums.items():
            sums[name] += float(values.sum())
        done += n
        opened += int(is_open.sum())
        index += 1
    model.train(was_training)
    means = {name: total / done for name, total in sums.items() if name not in open_only}
    if not all(math.isfinite(v) for k, v in means.items() if k != "psnr_db"):
        raise FloatingPointError(f"evaluation produced non-finite metrics: {means}")
    # no open pair (a tiny evaluation can draw only closed eyes): NaN, not a division by zero
    means |= {name: sums[name] / opened if opened else math.nan for name in open_only}
    return RedirectionMetrics(pairs=done, open_pairs=opened, **means)
