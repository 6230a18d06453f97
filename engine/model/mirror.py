"""Mirror ensembling: redirect a strip and its mirror image, and average the two results.

A normalised eye strip mirrored left to right is another valid strip: the left and right eyes swap, and every yaw
(gaze and head) changes sign while pitch stays. The renderer draws subjects, lights and poses symmetrically, so the
network has learned both halves of that symmetry, but not exactly: its errors on a strip and on the strip's mirror
are partly independent. Redirecting both (one batch of 2 B) and averaging the mirrored result back cancels part of
them, the test-time augmentation of image classifiers applied to a warp field.

The merge works on the decoder's outputs, not on finished images: the two backward flows are averaged (the mirrored
one flipped back, its x component negated), the two colour corrections ``mask * residual`` too, and the output
strip is drawn once more from the source with the averaged field. So the runtime, which pastes the flow and the
residual at full resolution, pastes exactly what the averaged strip shows.

:class:`MirrorEnsemble` is the redirector with that as its ``forward``: the runtime's backends run it (and export
it, and build it into a TensorRT engine) like the plain network, with the merge inside the graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.model.decoder import Decoded
from engine.model.guards import check_batch_vector, check_flow, check_pitch_yaw, check_strip
from engine.model.redirector import Redirector, RedirectorOutput
from engine.model.warp import warp
from engine.strip import mirror_angles, mirror_strips

__all__ = [
    "MirrorEnsemble",
    "merge_mirrored",
    "merge_mirrored_batch",
    "mirror_angles",
    "mirror_flow",
    "mirror_mean_angles",
    "mirror_strips",
    "split_halves",
    "with_mirrors",
]


def mirror_flow(flow: Tensor) -> Tensor:
    """A backward flow B x 2 x H x W (x, y) of a mirrored strip as a flow of the strip (and back): the field is
    flipped left to right and its x component negated."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be B x 2 x H x W, got shape {tuple(flow.shape)}")
    flipped = flow.flip(-1)
    return torch.cat((-flipped[:, :1], flipped[:, 1:]), dim=1)  # as mirror_angles: no constant tensor


def merge_mirrored(strip: Tensor, plain: Decoded, mirrored: Decoded) -> Decoded:
    """One result from the redirection of ``strip`` B x 3 x H x W (``plain``) and of its mirror (``mirrored``).

    The flow is the mean of the two fields, the colour correction the mean of the two ``mask * residual``; the
    merged mask is the mean mask and the merged residual is what, times that mask, gives the mean correction.
    The output strip is ``clamp(warp(strip, flow) + mask * residual, 0, 1)``, as the decoder composes it.
    """
    check_flow(plain.flow, strip)
    check_flow(mirrored.flow, strip)
    flow = 0.5 * (plain.flow + mirror_flow(mirrored.flow))  # -> B x 2 x H x W
    correction = 0.5 * (plain.mask * plain.residual + (mirrored.mask * mirrored.residual).flip(-1))  # -> B x 3 x H x W
    mask = 0.5 * (plain.mask + mirrored.mask.flip(-1))  # -> B x 1 x H x W, in (0, 1): a sigmoid's mean
    residual = correction / mask.clamp_min(1e-6)  # a weighted mean of the two residuals; 0 where both masks are
    size = (strip.shape[2], strip.shape[3])
    strip_out = (warp(strip, flow, size) + correction).clamp(0.0, 1.0)
    return Decoded(strip_out=strip_out, flow=flow, residual=residual, mask=mask)


def split_halves(batch: Tensor) -> tuple[Tensor, Tensor]:
    """The two halves (plain, mirrored) of a 2 B batch along its first axis."""
    if batch.shape[0] % 2:
        raise ValueError(f"a mirrored batch has an even size (B plain, then B mirrored), got {batch.shape[0]}")
    half = batch.shape[0] // 2
    return batch[:half], batch[half:]


def merge_mirrored_batch(strip: Tensor, decoded: Decoded) -> Decoded:
    """:func:`merge_mirrored` of one decoded 2 B batch: the B plain strips' results, then their mirrors'."""
    halves = [split_halves(t) for t in decoded]
    plain = Decoded(*(h[0] for h in halves))
    mirrored = Decoded(*(h[1] for h in halves))
    return merge_mirrored(strip, plain, mirrored)


def mirror_mean_angles(plain: Tensor, mirrored: Tensor) -> Tensor:
    """The mean of angles B x 2 read on strips and on their mirrors (the latter mirrored back)."""
    return 0.5 * (plain + mirror_angles(mirrored))


def with_mirrors(strip: Tensor, *angles: Tensor) -> tuple[Tensor, ...]:
    """The 2 B batch of ``strip`` and its mirror, and each of ``angles`` B x 2 followed by its mirrored copy."""
    return (
        torch.cat((strip, mirror_strips(strip))),
        *(torch.cat((a, mirror_angles(a))) for a in angles),
    )


class MirrorEnsemble(Redirector):
    """The redirector whose :meth:`forward` is the mirror ensemble: the same weights (and state dict) as the
    :class:`Redirector` it is made from, and the same inputs and outputs, so that it exports to ONNX, runs in the
    runtime's backends and CUDA graphs, and builds into a TensorRT engine like the plain network, with the merge
    inside the graph. Training and evaluation use the plain network's parts (:meth:`encode`, :meth:`decode`)."""

    @classmethod
    def from_redirector(cls, model: Redirector) -> MirrorEnsemble:
        """The ensemble of ``model``: a copy of its weights, on its device, in its training mode."""
        ensemble = cls(model.config)
        ensemble.load_state_dict(model.state_dict())
        reference = next(model.parameters())
        return ensemble.to(device=reference.device, dtype=reference.dtype).train(model.training)

    def forward(self, strip: Tensor, target_gaze: Tensor, strength: Tensor) -> RedirectorOutput:
        """:meth:`Redirector.forward` of ``strip`` B x 3 x H x W and of its mirror images in one batch, merged
        (:func:`merge_mirrored`); the gaze and head estimates are the means of the two readings."""
        batch = check_strip(strip, self.config)
        check_pitch_yaw(target_gaze, batch, "target_gaze")
        check_batch_vector(strength, batch, "strength")
        both, gaze = with_mirrors(strip, target_gaze)  # -> 2B x 3 x H x W, 2B x 2
        out = super().forward(both, gaze, torch.cat((strength, strength)))
        merged = merge_mirrored_batch(strip, Decoded(out.strip_out, out.flow, out.residual, out.mask))
        return RedirectorOutput(
            *merged,
            gaze_estimate=mirror_mean_angles(*split_halves(out.gaze_estimate)),  # -> B x 2
            head_estimate=mirror_mean_angles(*split_halves(out.head_estimate)),
        )
