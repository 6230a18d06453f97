"""The sampler: reproducible per seed, labels in range, pairs share subject and lighting, splits disjoint."""

from __future__ import annotations

import dataclasses
import math

import torch

from engine.data.synth import Split, SubjectPool, SynthConfig, SynthSampler
from engine.data.synth.sampler import draw_pose
from engine.data.synth.subject import draw_subjects
from engine.strip import StripGeometry

SMALL = SynthConfig(geometry=StripGeometry(height=32, width=128), pool=SubjectPool(train=300, val=50, test=50))


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    a = SynthSampler(SMALL, seed=3, batch_size=6).pairs(2)
    b = SynthSampler(SMALL, seed=3, batch_size=6).pairs(2)
    c = SynthSampler(SMALL, seed=4, batch_size=6).pairs(2)
    assert torch.equal(a.source.image, b.source.image)
    assert torch.equal(a.target.image, b.target.image)
    assert torch.equal(a.source.gaze, b.source.gaze)
    assert not torch.equal(a.source.image, c.source.image)


def test_iteration_order_is_the_batch_index() -> None:
    sampler = SynthSampler(SMALL, seed=1, batch_size=3)
    first, second = next(iter(sampler)), sampler.pairs()
    assert torch.equal(first.source.image, SynthSampler(SMALL, seed=1, batch_size=3).pairs(0).source.image)
    assert not torch.equal(first.source.gaze, second.source.gaze)


def test_batch_shapes_ranges_and_pairs() -> None:
    pairs = SynthSampler(SMALL, seed=0, batch_size=8).pairs(0)
    for strips in (pairs.source, pairs.target):
        assert strips.image.shape == (8, 3, 32, 128)
        assert strips.image.dtype == torch.float32
        assert float(strips.image.min()) >= 0.0
        assert float(strips.image.max()) <= 1.0
        assert float(strips.mask.max()) <= 1.0
    torch.testing.assert_close(pairs.source.subject, pairs.target.subject)
    # pairs differ in gaze (independent draws), and lid closure is shared by default
    assert (pairs.source.gaze - pairs.target.gaze).abs().sum(-1).min() > 0
    assert torch.equal(pairs.source.closed, pairs.target.closed)


def test_rendered_pairs_carry_their_sensor_scale() -> None:
    config = dataclasses.replace(SMALL, render_scales=(0.25, 1.0))
    _, source, target = SynthSampler(config, seed=0, batch_size=16).render_pairs(0)
    assert set(source.scale.tolist()) == {0.25, 1.0}
    assert torch.equal(source.scale, target.scale)  # a pair is taken by one camera

    # the label is the resolution the strip was rendered at: upscaled from a quarter, it has less fine detail
    def detail(image: torch.Tensor) -> torch.Tensor:
        return (image[..., 1:] - image[..., :-1]).abs().mean(dim=(1, 2, 3))

    sharp = detail(source.strips.image)
    assert float(sharp[source.scale == 0.25].mean()) < 0.7 * float(sharp[source.scale == 1.0].mean())


def test_rows_come_in_runs_of_one_scale_and_spectacles_of_independent_draws() -> None:
    config = dataclasses.replace(SMALL, render_scales=(0.25, 0.5, 1.0))
    _, source, target = SynthSampler(config, seed=2, batch_size=24).render_pairs(0)
    key = source.scale * 10 + (~source.glasses).float()  # the order the render calls take the rows in
    assert bool((key[1:] >= key[:-1]).all())
    assert set(source.scale.tolist()) == {0.25, 0.5, 1.0}
    assert 0 < int(source.glasses.sum()) < 24
    # every row is rendered at its own scale, pupils where its own eyes are
    assert torch.equal(source.strips.subject, target.strips.subject)
    assert not torch.equal(source.pupil_px, target.pupil_px)
    # the subjects themselves are not sorted: the same draws as before, only reordered
    assert not bool((source.strips.subject[1:] >= source.strips.subject[:-1]).all())


def test_poses_stay_in_their_ranges() -> None:
    cfg = SynthConfig()
    gen = torch.Generator().manual_seed(0)
    head, gaze = draw_pose(cfg, 4000, gen, torch.device("cpu"))
    assert float(gaze.abs().max()) <= math.radians(cfg.gaze_range_deg) + 1e-6
    assert float(head.abs().max()) <= math.radians(cfg.head_range_deg) + 1e-6
    limit = torch.deg2rad(torch.tensor(cfg.eye_in_head_deg))
    assert bool(((gaze - head).abs() <= limit + 1e-6).all())
    # and they use the ranges (not collapsed to the centre)
    assert float(gaze.abs().max()) > math.radians(cfg.gaze_range_deg) * 0.95


def test_train_and_test_subjects_never_meet() -> None:
    train = SynthSampler(SMALL, Split.TRAIN, seed=0, batch_size=64)
    test = SynthSampler(SMALL, Split.TEST, seed=0, batch_size=64)
    gen_train = {int(s) for i in range(3) for s in train._subjects(64, train._generator(i))}
    gen_test = {int(s) for i in range(3) for s in test._subjects(64, test._generator(i))}
    assert gen_train
    assert gen_test
    assert gen_train.isdisjoint(gen_test)
    lo, hi = SMALL.pool.id_range(Split.TEST)
    assert all(lo <= s < hi for s in gen_test)
    assert SMALL.pool.split_of(torch.tensor([0, 299, 300, 349, 350])) == [
        Split.TRAIN,
        Split.TRAIN,
        Split.VAL,
        Split.VAL,
        Split.TEST,
    ]


def test_a_subject_looks_the_same_in_any_batch() -> None:
    alone = draw_subjects(torch.tensor([123]))
    among = draw_subjects(torch.tensor([7, 123, 9]))
    for name, value in vars(alone).items():
        torch.testing.assert_close(value[0], getattr(among, name)[1], msg=name)
    other_world = draw_subjects(torch.tensor([123]), world_seed=1)
    assert not torch.equal(alone.skin, other_world.skin)


def test_appearance_covers_the_population() -> None:
    app = draw_subjects(torch.arange(4000))
    luminance = app.skin @ torch.tensor([0.2126, 0.7152, 0.0722])
    # light and dark skin both well represented (linear albedo)
    assert float((luminance > 0.45).float().mean()) > 0.1
    assert float((luminance < 0.12).float().mean()) > 0.1
    assert 0.25 < float(app.glasses.float().mean()) < 0.45
    assert float(app.ipd.min()) >= 55.0
    assert float(app.ipd.max()) <= 70.0
    blue = app.iris_outer[:, 2] > app.iris_outer[:, 0] * 1.5
    assert 0.05 < float(blue.float().mean()) < 0.4
