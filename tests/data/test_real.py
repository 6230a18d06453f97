"""Tests of the real-dataset loaders: schema files, the face-to-strip cut, pairs, splits and errors."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from engine.data.batch import PairBatch, StripBatch
from engine.data.face_to_strip import (
    FAZE_NORMALISATION,
    NOSE_WINGS_MM,
    XGAZE_NORMALISATION,
    FaceNormalisation,
    eye_region_mask,
    plan_strip_cut,
    warp_to_strip,
)
from engine.data.real import (
    DatasetFormatError,
    MissingKeyError,
    RealStripDataset,
    SamePersonPairSampler,
    collate_strips,
    faze_dataset,
    faze_person_keys,
    pair_loader,
    split_persons,
    xgaze_dataset,
)
from engine.strip import (
    DEFAULT_EYE_MODEL,
    DEFAULT_STRIP,
    StripGeometry,
    normalising_rotation,
    rotation_from_pitch_yaw,
)

PERSONS = ("p00", "p01", "p02")
SAMPLES = 5


# --- schema files -------------------------------------------------------------------------------------------


def _random_labels(rng: np.random.Generator, n: int, width: int = 4) -> NDArray[np.float32]:
    return rng.uniform(-0.3, 0.3, size=(n, width)).astype(np.float32)


def write_faze(
    path: Path,
    persons: tuple[str, ...] = PERSONS,
    samples: int = SAMPLES,
    *,
    seed: int = 0,
    images: NDArray[np.uint8] | None = None,
    labels: NDArray[np.float32] | None = None,
) -> Path:
    """A FAZE/ST-ED file: one group per person with ``pixels`` and ``labels``."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for person in persons:
            g = f.create_group(person)
            pix = rng.integers(0, 256, size=(samples, 128, 128, 3), dtype=np.uint8) if images is None else images
            g.create_dataset("pixels", data=pix)
            g.create_dataset("labels", data=_random_labels(rng, len(pix)) if labels is None else labels)
    return path


def write_xgaze(
    path: Path,
    samples: int = SAMPLES,
    *,
    seed: int = 0,
    images: NDArray[np.uint8] | None = None,
    gaze: NDArray[np.float64] | None = None,
    head: NDArray[np.float64] | None = None,
) -> Path:
    """An ETH-XGaze subject file: ``face_patch``, ``face_gaze``, ``face_head_pose`` (float64, as released)."""
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, size=(samples, 224, 224, 3), dtype=np.uint8) if images is None else images
    n = len(pix)
    with h5py.File(path, "w") as f:
        f.create_dataset("face_patch", data=pix)
        f.create_dataset("face_gaze", data=rng.uniform(-0.3, 0.3, (n, 2)) if gaze is None else gaze)
        f.create_dataset("face_head_pose", data=rng.uniform(-0.3, 0.3, (n, 2)) if head is None else head)
    return path


@pytest.fixture
def faze_file(tmp_path: Path) -> Path:
    return write_faze(tmp_path / "GazeCapture.h5")


def _check_sample(sample: StripBatch, geometry: StripGeometry = DEFAULT_STRIP) -> None:
    h, w = geometry.height, geometry.width
    assert sample.image.shape == (1, 3, h, w)
    assert sample.image.dtype == torch.float32
    assert float(sample.image.min()) >= 0.0
    assert float(sample.image.max()) <= 1.0
    assert sample.gaze.shape == (1, 2)
    assert sample.gaze.dtype == torch.float32
    assert sample.head.shape == (1, 2)
    assert sample.head.dtype == torch.float32
    assert sample.mask.shape == (1, 1, h, w)
    assert sample.openness.tolist() == [1.0]
    assert sample.closed.tolist() == [False]
    assert sample.subject.dtype == torch.int64


# --- loaders read the schema ------------------------------------------------------------------------------


def test_faze_loader_reads_all_persons(faze_file: Path) -> None:
    ds = faze_dataset(faze_file)
    assert faze_person_keys(faze_file) == list(PERSONS)
    assert ds.person_keys == PERSONS
    assert len(ds) == len(PERSONS) * SAMPLES
    for i in (0, 7, len(ds) - 1):
        sample = ds[i]
        _check_sample(sample)
        assert int(sample.subject) == i // SAMPLES
    batch = collate_strips([ds[i] for i in range(4)])
    assert len(batch) == 4
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_faze_loader_restricts_persons_in_given_order(faze_file: Path) -> None:
    ds = faze_dataset(faze_file, persons=["p02", "p00"])
    assert ds.person_keys == ("p02", "p00")
    assert len(ds) == 2 * SAMPLES
    assert int(ds[0].subject) == 0
    assert int(ds[SAMPLES].subject) == 1


def test_xgaze_loader_one_subject_per_file(tmp_path: Path) -> None:
    paths = [write_xgaze(tmp_path / "subject0007.h5", 3, seed=1), write_xgaze(tmp_path / "subject0003.h5", 4)]
    ds = xgaze_dataset(paths)
    assert ds.person_keys == ("subject0007", "subject0003")
    assert len(ds) == 7
    _check_sample(ds[3])
    assert int(ds[3].subject) == 1
    only = xgaze_dataset(paths, subjects=["subject0003"])
    assert len(only) == 4
    assert only.person_keys == ("subject0003",)


def test_xgaze_channel_order_is_bgr_by_default(tmp_path: Path) -> None:
    face = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    face[..., 0] = 255  # blue, as OpenCV writes it
    path = write_xgaze(tmp_path / "subject0001.h5", images=face)
    rgb = xgaze_dataset([path])[0].image[0]
    assert float(rgb[2].min()) == 1.0
    assert float(rgb[0].max()) == 0.0
    raw = xgaze_dataset([path], channel_order="RGB")[0].image[0]
    assert float(raw[0].min()) == 1.0
    assert float(raw[2].max()) == 0.0


def test_equalise_changes_the_strip_and_stays_in_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    dim = rng.integers(60, 90, size=(2, 128, 128, 3), dtype=np.uint8)  # low contrast
    path = write_faze(tmp_path / "f.h5", ("a",), images=dim)
    plain = faze_dataset(path)[0].image
    equalised = faze_dataset(path, equalise=True)[0].image
    assert float(equalised.min()) >= 0.0
    assert float(equalised.max()) <= 1.0
    assert float(equalised.std()) > 2.0 * float(plain.std())


def test_dataset_pickles_without_open_files(faze_file: Path) -> None:
    ds = faze_dataset(faze_file)
    first = ds[0].image
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone, RealStripDataset)
    assert torch.equal(clone[0].image, first)
    ds.close()
    clone.close()


# --- face normalisations ------------------------------------------------------------------------------------


def test_eye_offsets_follow_the_eye_model() -> None:
    m = DEFAULT_EYE_MODEL
    six = np.concatenate((m.eye_corners(), m.face_points()[1:3]))
    np.testing.assert_allclose(FAZE_NORMALISATION.eye_offset_mm, -six.mean(axis=0), atol=1e-12)
    # ETH-XGaze: midpoint of the eye-corner and nose-wing centroids; the eye corners average to the origin.
    expected = -0.5 * (m.eye_corners().mean(axis=0) + np.mean(NOSE_WINGS_MM, axis=0))
    np.testing.assert_allclose(XGAZE_NORMALISATION.eye_offset_mm, expected, atol=1e-12)
    # The eyes sit above the face centre (y down) in both.
    assert FAZE_NORMALISATION.eye_offset_mm[1] < -10.0
    assert XGAZE_NORMALISATION.eye_offset_mm[1] < -10.0


# --- labels in the strip frame ------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [FAZE_NORMALISATION, XGAZE_NORMALISATION])
def test_frontal_head_and_zero_gaze_give_near_zero_labels(norm: FaceNormalisation) -> None:
    cut = plan_strip_cut(torch.zeros(2), torch.zeros(2), norm)
    # Only the small re-aim from the face centre to the eyes (2-3 degrees of pitch) remains.
    assert float(cut.gaze.abs().max()) < math.radians(3.0)
    assert float(cut.head.abs().max()) < math.radians(3.0)
    assert abs(float(cut.gaze[1])) < 1e-9
    assert abs(float(cut.head[1])) < 1e-9


def test_gaze_along_the_head_stays_along_the_head() -> None:
    g = torch.Generator().manual_seed(0)
    head = (torch.rand(64, 2, generator=g, dtype=torch.float64) - 0.5) * 1.2
    cut = plan_strip_cut(head.clone(), head, FAZE_NORMALISATION)
    torch.testing.assert_close(cut.gaze, cut.head, atol=1e-9, rtol=0.0)
    # and a gaze away from the head keeps its angle to the head through the rotation
    gaze = head + torch.tensor([0.2, -0.1], dtype=torch.float64)
    cut2 = plan_strip_cut(gaze, head, FAZE_NORMALISATION)
    from engine.strip import angular_error_deg

    torch.testing.assert_close(
        angular_error_deg(cut2.gaze, cut2.head), angular_error_deg(gaze, head), atol=1e-6, rtol=0.0
    )


# --- the cut lands the eyes where the strip camera sees them ------------------------------------------------


def _blob_image(size: int, centres: NDArray[np.float64], sigma: float) -> NDArray[np.uint8]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    img = np.full((size, size), 20.0)
    for cx, cy in centres:
        img += 230.0 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2.0 * sigma**2))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _centroid(channel: torch.Tensor, near: torch.Tensor, radius: int) -> torch.Tensor:
    h, w = channel.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    window = ((xs - near[0]).abs() <= radius) & ((ys - near[1]).abs() <= radius)
    weight = (channel.double() - 30.0 / 255.0).clamp_min(0.0) * window
    total = weight.sum()
    return torch.stack(((weight * xs).sum() / total, (weight * ys).sum() / total))


@pytest.mark.parametrize(
    ("kind", "geometry", "sigma"),
    [
        ("faze", DEFAULT_STRIP, 1.2),
        ("xgaze", DEFAULT_STRIP, 1.5),
        ("faze", StripGeometry(height=16, width=64), 2.5),  # the strip samples coarser than the face
    ],
)
def test_cut_puts_eyeball_centres_where_the_strip_camera_projects_them(
    tmp_path: Path, kind: str, geometry: StripGeometry, sigma: float
) -> None:
    norm = FAZE_NORMALISATION if kind == "faze" else XGAZE_NORMALISATION
    head = torch.tensor([0.25, -0.35], dtype=torch.float64)
    gaze = torch.tensor([-0.1, 0.2], dtype=torch.float64)
    r_head = rotation_from_pitch_yaw(head)
    face_centre = torch.tensor([0.0, 0.0, norm.distance_mm], dtype=torch.float64)
    offset = torch.tensor(norm.eye_offset_mm, dtype=torch.float64)
    eyes_head = torch.as_tensor(DEFAULT_EYE_MODEL.eyeball_centres(), dtype=torch.float64)
    eyes_face = face_centre + (offset + eyes_head) @ r_head.T  # [2, 3] in the face camera

    # the face image: bright blobs where the face camera sees the eyeball centres (OpenCV pixel centres)
    k = torch.as_tensor(norm.camera_matrix(), dtype=torch.float64)
    uv = (eyes_face @ k.T)[:, :2] / eyes_face[:, 2:3]
    face = _blob_image(norm.size, uv.numpy(), sigma)[None]
    if kind == "faze":
        labels = np.concatenate((gaze.numpy(), head.numpy())).astype(np.float32)[None]
        ds = faze_dataset(write_faze(tmp_path / "f.h5", ("a",), images=face, labels=labels), geometry=geometry)
    else:
        path = write_xgaze(tmp_path / "s.h5", images=face, gaze=gaze.numpy()[None], head=head.numpy()[None])
        ds = xgaze_dataset([path], geometry=geometry)
    strip = ds[0].image[0, 1]

    # where the strip's camera sees the same points: rotate into it, then move it to the strip's distance
    eye_mid = face_centre + r_head @ offset
    rot = normalising_rotation(eye_mid, r_head)
    scale = torch.diag(torch.tensor([1.0, 1.0, geometry.distance_mm / float(eye_mid.norm())], dtype=torch.float64))
    expected = geometry.project(eyes_face @ (scale @ rot).T) - 0.5  # to pixel-index coordinates
    assert float(expected[:, 0].min()) > 5
    assert float(expected[:, 0].max()) < geometry.width - 5
    radius = max(4, round(3 * sigma * geometry.focal / geometry.distance_mm / (norm.focal / norm.distance_mm)))
    for point in expected:
        found = _centroid(strip, point, radius)
        # Observed error is ~0.02 px; a quarter pixel catches a half-pixel slip in either camera's convention.
        assert float((found - point).norm()) < 0.25, (found, point)


def test_warp_keeps_a_flat_image_flat() -> None:
    face = np.full((128, 128, 3), 77, dtype=np.uint8)
    cut = plan_strip_cut(torch.zeros(2), torch.tensor([0.3, 0.6]), FAZE_NORMALISATION)
    for geometry in (DEFAULT_STRIP, StripGeometry(height=16, width=64)):
        strip = warp_to_strip(face, cut.homography.numpy(), geometry)
        assert strip.shape == (geometry.height, geometry.width, 3)
        assert int(strip.min()) == 77
        assert int(strip.max()) == 77


# --- the eye-region mask ------------------------------------------------------------------------------------


def test_eye_region_mask_covers_the_eyes_only() -> None:
    mask = eye_region_mask()
    assert mask.shape == (1, DEFAULT_STRIP.height, DEFAULT_STRIP.width)
    assert mask.dtype == torch.float32
    assert float(mask.min()) == 0.0
    assert float(mask.max()) == 1.0
    corners = torch.as_tensor(DEFAULT_EYE_MODEL.eye_corners(), dtype=torch.float64)
    corners = corners + torch.tensor([0.0, 0.0, DEFAULT_STRIP.distance_mm], dtype=torch.float64)
    for eye in corners.reshape(2, 2, 3):
        x, y = (DEFAULT_STRIP.project(eye.mean(dim=0)) - 0.5).round().long().tolist()
        assert float(mask[0, y, x]) == 1.0
    w = DEFAULT_STRIP.width
    assert float(mask[0, :, w // 2 - 2 : w // 2 + 2].max()) == 0.0  # nose bridge
    assert float(mask[0, 0, 0]) == 0.0
    assert float(mask[0, -1, -1]) == 0.0
    torch.testing.assert_close(mask, mask.flip(-1), atol=1e-5, rtol=0.0)  # mirror-symmetric model


# --- pairs --------------------------------------------------------------------------------------------------


def test_pair_sampler_pairs_within_a_person_and_is_deterministic(faze_file: Path) -> None:
    ds = faze_dataset(faze_file)
    sampler = SamePersonPairSampler(ds.person_indices(), batch_size=4, seed=7)
    pairs = sampler.pairs()
    assert sorted(pairs[:, 0].tolist()) == list(range(len(ds)))  # every sample once as a source
    for s, t in pairs.tolist():
        assert ds.locate(s)[0] == ds.locate(t)[0]
        assert s != t
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(len(ds) / 4)
    assert [p for b in batches for p in b] == [tuple(p) for p in pairs.tolist()]
    again = SamePersonPairSampler(ds.person_indices(), batch_size=4, seed=7)
    assert np.array_equal(again.pairs(), pairs)
    other = SamePersonPairSampler(ds.person_indices(), batch_size=4, seed=8)
    assert not np.array_equal(other.pairs(), pairs)
    again.set_epoch(1)
    assert not np.array_equal(again.pairs(), pairs)
    dropping = SamePersonPairSampler(ds.person_indices(), batch_size=4, drop_last=True)
    assert len(dropping) == len(list(dropping)) == len(ds) // 4


def test_pair_sampler_handles_single_sample_persons() -> None:
    sampler = SamePersonPairSampler([np.array([0]), np.array([1, 2]), np.array([], dtype=np.int64)], 2)
    pairs = sampler.pairs()
    assert sorted(pairs[:, 0].tolist()) == [0, 1, 2]
    assert {tuple(p) for p in pairs.tolist()} == {(0, 0), (1, 2), (2, 1)}


def test_pair_loader_yields_same_person_pair_batches(faze_file: Path) -> None:
    ds = faze_dataset(faze_file)
    batches = list(pair_loader(ds, batch_size=6, seed=3))
    assert all(isinstance(b, PairBatch) for b in batches)
    assert [len(b) for b in batches] == [6, 6, 3]
    for b in batches:
        assert torch.equal(b.source.subject, b.target.subject)
    repeat = list(pair_loader(ds, batch_size=6, seed=3))
    for a, b in zip(batches, repeat, strict=True):
        assert torch.equal(a.source.gaze, b.source.gaze)
        assert torch.equal(a.target.image, b.target.image)


# --- splits -------------------------------------------------------------------------------------------------


def test_person_splits_are_disjoint_complete_and_deterministic() -> None:
    keys = [f"{i:05d}" for i in range(23)]
    split = split_persons(keys, (0.7, 0.15, 0.15), seed=4)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == len(keys)
    assert set().union(*parts) == set(keys)
    assert (len(split.train), len(split.val), len(split.test)) == (16, 3, 4)
    assert split_persons(list(reversed(keys)), (0.7, 0.15, 0.15), seed=4) == split
    assert split_persons(keys, (0.7, 0.15, 0.15), seed=5) != split
    with pytest.raises(ValueError, match="fractions"):
        split_persons(keys, (0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="unique"):
        split_persons(["a", "a"])


def test_split_feeds_the_loader(faze_file: Path) -> None:
    split = split_persons(faze_person_keys(faze_file), (0.34, 0.33, 0.33), seed=0)
    sizes = [len(faze_dataset(faze_file, persons=part)) for part in (split.train, split.val, split.test)]
    assert sum(sizes) == len(PERSONS) * SAMPLES


# --- errors name the file and the key -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        faze_dataset(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        xgaze_dataset([missing])


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetFormatError, match=r"junk\.h5"):
        faze_dataset(path)


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    path = write_faze(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        del f["p01"]["labels"]
    with pytest.raises(MissingKeyError) as info:
        faze_dataset(path)
    assert isinstance(info.value, KeyError)
    assert str(path) in str(info.value)
    assert "p01/labels" in str(info.value)
    with pytest.raises(MissingKeyError, match="p07"):
        faze_dataset(write_faze(tmp_path / "g.h5"), persons=["p07"])
    xg = tmp_path / "subject0002.h5"
    with h5py.File(xg, "w") as f:  # like the released test split: no gaze labels
        f.create_dataset("face_patch", data=np.zeros((2, 224, 224, 3), np.uint8))
        f.create_dataset("face_head_pose", data=np.zeros((2, 2)))
    with pytest.raises(MissingKeyError) as info:
        xgaze_dataset([xg])
    assert str(xg) in str(info.value)
    assert "face_gaze" in str(info.value)
    with pytest.raises(MissingKeyError, match="subject0009"):
        xgaze_dataset([write_xgaze(tmp_path / "subject0001.h5")], subjects=["subject0009"])


@pytest.mark.parametrize(
    ("images", "labels", "key"),
    [
        (np.zeros((5, 64, 64, 3), np.uint8), np.zeros((5, 4), np.float32), "p00/pixels"),  # wrong size
        (np.zeros((5, 128, 128), np.uint8), np.zeros((5, 4), np.float32), "p00/pixels"),  # wrong ndim
        (np.zeros((5, 128, 128, 3), np.float32), np.zeros((5, 4), np.float32), "p00/pixels"),  # wrong dtype
        (np.zeros((5, 128, 128, 3), np.uint8), np.zeros((5, 3), np.float32), "p00/labels"),  # too short
        (np.zeros((5, 128, 128, 3), np.uint8), np.zeros((4, 4), np.float32), "p00/labels"),  # lengths differ
        (np.zeros((5, 128, 128, 3), np.uint8), np.zeros((5, 4), np.int32), "p00/labels"),  # not radians
    ],
)
def test_malformed_arrays_name_file_and_key(
    tmp_path: Path, images: NDArray[np.generic], labels: NDArray[np.generic], key: str
) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("p00/pixels", data=images)
        f.create_dataset("p00/labels", data=labels)
    with pytest.raises(DatasetFormatError) as info:
        faze_dataset(path)
    assert str(path) in str(info.value)
    assert key in str(info.value)
