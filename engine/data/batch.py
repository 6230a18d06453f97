"""The batch types every data source yields: labelled eye strips, and pairs of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from engine.strip import mirror_angles, mirror_strips


@dataclass
class StripBatch:
    """A batch of normalised eye strips with their labels.

    Shapes: ``image`` B x 3 x H x W float32 RGB in [0, 1]; ``gaze`` and ``head`` B x 2 (pitch, yaw) radians in
    the normalised camera frame (see :mod:`engine.strip`); ``openness`` B (eye aperture relative to the subject's
    open eye at a level gaze; 0 = closed); ``closed`` B bool; ``subject`` B int64; ``mask`` B x 1 x H x W in [0, 1],
    the visible eyeball (the region the redirector may change). ``pupil`` (optional, synthetic strips only) is
    B x 2 x 2: where the renderer put the two pupil centres, (x, y) strip pixels (centres at +0.5), the image-left
    eye first. A batch has it for every row or for none.
    """

    image: Tensor
    gaze: Tensor
    head: Tensor
    openness: Tensor
    closed: Tensor
    subject: Tensor
    mask: Tensor
    pupil: Tensor | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[1] != 3:
            raise ValueError(f"image must be B x 3 x H x W, got {tuple(self.image.shape)}")
        b, _, h, w = self.image.shape
        expected = {
            "gaze": (b, 2),
            "head": (b, 2),
            "openness": (b,),
            "closed": (b,),
            "subject": (b,),
            "mask": (b, 1, h, w),
            "pupil": (b, 2, 2),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            got = tuple(value.shape)
            if got != shape:
                raise ValueError(f"{name} must have shape {shape} for an image batch of {b}, got {got}")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def _map(self, fn: Callable[[Tensor], Tensor]) -> StripBatch:
        """The batch with ``fn`` applied to every tensor (an absent ``pupil`` stays absent)."""
        mapped: dict[str, Any] = {f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in fields(self)}
        return StripBatch(**mapped)

    def to(self, device: torch.device | str) -> StripBatch:
        """The same batch on another device."""
        return self._map(lambda v: v.to(device))

    def index(self, idx: Tensor | slice) -> StripBatch:
        """A sub-batch (rows selected by a slice, an index tensor or a boolean mask)."""
        return self._map(lambda v: v[idx])

    def mirrored(self, rows: Tensor) -> StripBatch:
        """The batch with the ``rows`` (a B bool mask) mirrored left to right: their images and masks flipped, the
        yaws of their gaze and head negated (a mirrored strip is another valid strip of the renderer's
        distribution, which draws subjects, lights and poses symmetrically)."""
        if rows.shape != (len(self),) or rows.dtype != torch.bool:
            raise ValueError(f"rows must be a bool mask of shape ({len(self)},), got {rows.dtype} {tuple(rows.shape)}")
        pick, pick_angles = rows.view(-1, 1, 1, 1), rows.view(-1, 1)
        pupil = self.pupil
        if pupil is not None:
            # x -> W - x (pixel centres at +0.5), and the image-left eye is now the other one
            flipped = torch.stack((self.image.shape[-1] - pupil[..., 0], pupil[..., 1]), dim=-1).flip(1)
            pupil = torch.where(rows.view(-1, 1, 1), flipped, pupil)
        return StripBatch(
            image=torch.where(pick, mirror_strips(self.image), self.image),
            gaze=torch.where(pick_angles, mirror_angles(self.gaze), self.gaze),
            head=torch.where(pick_angles, mirror_angles(self.head), self.head),
            openness=self.openness,
            closed=self.closed,
            subject=self.subject,
            mask=torch.where(pick, mirror_strips(self.mask), self.mask),
            pupil=pupil,
        )

    @staticmethod
    def cat(batches: list[StripBatch]) -> StripBatch:
        """Concatenate batches along the batch axis."""
        if not batches:
            raise ValueError("cannot concatenate an empty list of batches")
        if len({b.pupil is None for b in batches}) > 1:
            raise ValueError("cannot concatenate batches with pupil positions and batches without")
        present = [f.name for f in fields(StripBatch) if getattr(batches[0], f.name) is not None]
        return StripBatch(**{name: torch.cat([getattr(b, name) for b in batches]) for name in present})


@dataclass
class PairBatch:
    """Source and target strips of the same subjects (same appearance and lighting, other gaze and head)."""

    source: StripBatch
    target: StripBatch

    def __post_init__(self) -> None:
        if self.source.image.shape != self.target.image.shape:
            raise ValueError(
                f"source and target images differ in shape: {tuple(self.source.image.shape)} vs "
                f"{tuple(self.target.image.shape)}"
            )
        if not torch.equal(self.source.subject, self.target.subject):
            raise ValueError("a pair must show the same subject in source and target")

    def __len__(self) -> int:
        return len(self.source)

    def to(self, device: torch.device | str) -> PairBatch:
        """The same pairs on another device."""
        return PairBatch(self.source.to(device), self.target.to(device))


def place_rows(parts: list[tuple[Tensor, Tensor]], n: int) -> Tensor:
    """A batch of ``n`` rows put together from ``(rows, values)`` parts: one copy of each part, in place."""
    if not parts:
        raise ValueError("cannot place an empty list of parts")
    first = parts[0][1]
    out = first.new_empty((n, *first.shape[1:]))
    for rows, values in parts:
        out[rows] = values
    return out
