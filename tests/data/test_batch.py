"""The batch types refuse what would silently corrupt training: wrong shapes, pairs of different subjects."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.data.batch import PairBatch, StripBatch, place_rows


def _strips(subjects: list[int], size: int = 8) -> StripBatch:
    b = len(subjects)
    return StripBatch(
        image=torch.zeros(b, 3, size, size),
        gaze=torch.zeros(b, 2),
        head=torch.zeros(b, 2),
        openness=torch.ones(b),
        closed=torch.zeros(b, dtype=torch.bool),
        subject=torch.tensor(subjects),
        mask=torch.zeros(b, 1, size, size),
    )


def test_a_pair_of_the_same_subjects_is_accepted() -> None:
    pair = PairBatch(_strips([3, 7]), _strips([3, 7]))
    assert len(pair.source) == 2


def test_a_pair_of_different_subjects_is_refused() -> None:
    with pytest.raises(ValueError, match="same subject"):
        PairBatch(_strips([3, 7]), _strips([3, 8]))


def test_labels_must_match_the_image_batch() -> None:
    strips = _strips([1, 2])
    with pytest.raises(ValueError, match="gaze must have shape"):
        StripBatch(
            strips.image, torch.zeros(3, 2), strips.head, strips.openness, strips.closed, strips.subject, strips.mask
        )


def test_rows_are_placed_where_they_belong() -> None:
    values = torch.arange(12.0).view(6, 2)
    rows = [torch.tensor([4, 0, 2]), torch.tensor([5, 1, 3])]
    placed = place_rows([(r, values[r]) for r in rows], 6)
    assert torch.equal(placed, values)
    with pytest.raises(ValueError, match="empty"):
        place_rows([], 3)


def test_mirrored_rows_flip_images_masks_and_yaws_only() -> None:
    gen = torch.Generator().manual_seed(0)
    strips = StripBatch(
        image=torch.rand(3, 3, 8, 16, generator=gen),
        gaze=torch.tensor([[0.1, 0.2], [0.3, -0.4], [-0.5, 0.6]]),
        head=torch.tensor([[0.05, -0.1], [0.0, 0.2], [0.1, 0.1]]),
        openness=torch.tensor([1.0, 0.5, 0.0]),
        closed=torch.tensor([False, False, True]),
        subject=torch.tensor([4, 5, 6]),
        mask=torch.rand(3, 1, 8, 16, generator=gen),
    )
    rows = torch.tensor([True, False, True])
    out = strips.mirrored(rows)
    assert torch.equal(out.image[0], strips.image[0].flip(-1))
    assert torch.equal(out.image[1], strips.image[1])
    assert torch.equal(out.mask[2], strips.mask[2].flip(-1))
    assert torch.equal(out.gaze, torch.tensor([[0.1, -0.2], [0.3, -0.4], [-0.5, -0.6]]))
    assert torch.equal(out.head[:, 0], strips.head[:, 0])
    assert torch.equal(out.head[:, 1], torch.tensor([0.1, 0.2, -0.1]))
    for name in ("openness", "closed", "subject"):
        assert torch.equal(getattr(out, name), getattr(strips, name))
    again = out.mirrored(rows)
    assert torch.equal(again.image, strips.image)
    assert torch.equal(again.gaze, strips.gaze)
    with pytest.raises(ValueError, match="bool mask"):
        strips.mirrored(torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="bool mask"):
        strips.mirrored(torch.tensor([True, False]))


def _dotted(b: int = 2, h: int = 8, w: int = 16) -> StripBatch:
    """Strips with a bright dot on each pupil: eye 0 at pixel (x 3, y 2), eye 1 at (x 12, y 5), shifted per row."""
    image = torch.zeros(b, 3, h, w)
    pupil = torch.zeros(b, 2, 2)
    for row in range(b):
        for eye, (x, y) in enumerate(((3 + row, 2), (12 - row, 5))):
            image[row, :, y, x] = 1.0
            pupil[row, eye] = torch.tensor([x + 0.5, y + 0.5])  # pixel centres at +0.5
    return replace(_strips(list(range(b))), image=image, mask=torch.zeros(b, 1, h, w), pupil=pupil)


def test_mirrored_pupils_stay_on_the_pupils_image_left_eye_first() -> None:
    strips = _dotted()
    out = strips.mirrored(torch.tensor([True, False]))
    assert out.pupil is not None
    assert strips.pupil is not None
    for row in range(2):
        for eye in range(2):
            x, y = (int(v) for v in out.pupil[row, eye].floor().tolist())
            assert float(out.image[row, 0, y, x]) == 1.0, (row, eye)
        assert float(out.pupil[row, 0, 0]) < float(out.pupil[row, 1, 0])  # the image-left eye first
    assert torch.equal(out.pupil[1], strips.pupil[1])
    back = out.mirrored(torch.tensor([True, False])).pupil
    assert back is not None
    assert torch.equal(back, strips.pupil)


def test_pupils_follow_rows_and_are_all_or_none() -> None:
    strips = _dotted(3)
    assert strips.pupil is not None
    picked = strips.index(torch.tensor([2, 0]))
    assert picked.pupil is not None
    assert torch.equal(picked.pupil, strips.pupil[[2, 0]])
    joined = StripBatch.cat([strips, strips.to("cpu")])
    assert joined.pupil is not None
    assert joined.pupil.shape == (6, 2, 2)
    plain = _strips([1, 2, 3], size=8)
    assert plain.pupil is None
    assert plain.index(torch.tensor([0])).pupil is None
    with pytest.raises(ValueError, match="pupil positions"):
        StripBatch.cat([_dotted(1, 16, 16), _strips([1], size=16)])
    with pytest.raises(ValueError, match="pupil must have shape"):
        StripBatch(**{**strips.__dict__, "pupil": torch.zeros(3, 2)})
