"""Loaders for real gaze datasets: eye strips cut lazily out of their normalised faces.

Supported files (we never download them; users point us at their copies):

* FAZE/ST-ED preprocessing of GazeCapture and MPIIFaceGaze: one HDF5 file, one group per person, each with
  ``pixels`` (N x 128 x 128 x 3 uint8 RGB faces) and ``labels`` (N x >=4 float radians: gaze pitch, gaze yaw,
  head pitch, head yaw, ...);
* ETH-XGaze: one HDF5 file per subject with ``face_patch`` (N x 224 x 224 x 3 uint8, BGR as OpenCV wrote it),
  ``face_gaze`` and ``face_head_pose`` (N x 2 float radians).

Both label conventions equal ours (:mod:`engine.strip`): gaze is ``(asin(-y), atan2(-x, -z))`` of the unit
gaze vector, and the head label is ``(asin(R[1, 2]), atan2(R[0, 2], R[2, 2]))`` of the head rotation (whose
frame has y down and z into the head, like ours), which is :func:`engine.strip.pitch_yaw_from_rotation`.

Every sample is a :class:`~engine.data.batch.StripBatch` of one (concatenate with :func:`collate_strips`);
pairs of the same person come from :func:`pair_loader` as :class:`~engine.data.batch.PairBatch`. The datasets
do not label eye openness: it is reported as 1.0 (an open eye) and ``closed`` as False, so losses on openness
should leave these sources out.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.data.batch import PairBatch, StripBatch
from engine.data.face_to_strip import (
    FAZE_NORMALISATION,
    XGAZE_NORMALISATION,
    FaceNormalisation,
    equalise_luma,
    eye_region_mask,
    plan_strip_cut,
    warp_to_strip,
)
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)

ChannelOrder = Literal["RGB", "BGR"]


# --- errors -------------------------------------------------------------------------------------------------


class DatasetFormatError(ValueError):
    """A gaze dataset file does not have the layout its loader expects."""


class MissingKeyError(DatasetFormatError, KeyError):
    """A group or dataset a loader needs is not in the file (also a KeyError)."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were the missing key itself.
        return str(self.args[0]) if self.args else ""


# --- schemas ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealSchema:
    """Where a dataset keeps a person's faces and labels, and how to read them.

    ``gaze_column`` and ``head_column`` are the first of the two (pitch, yaw) columns in their datasets.
    """

    name: str
    normalisation: FaceNormalisation
    images_key: str
    gaze_key: str
    gaze_column: int
    head_key: str
    head_column: int
    channel_order: ChannelOrder


FAZE_SCHEMA = RealSchema("FAZE", FAZE_NORMALISATION, "pixels", "labels", 0, "labels", 2, "RGB")
XGAZE_SCHEMA = RealSchema("ETH-XGaze", XGAZE_NORMALISATION, "face_patch", "face_gaze", 0, "face_head_pose", 0, "BGR")


@dataclass(frozen=True)
class PersonSource:
    """One person's samples: an HDF5 group (``""`` for the file root) and their raw labels, read up front.

    ``gaze`` and ``head`` are N x 2 float32 (pitch, yaw) in the dataset's face frame.
    """

    key: str
    path: Path
    group: str
    gaze: NDArray[np.float32]
    head: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.gaze.shape[0])


def _where(path: Path, group: str, key: str = "") -> str:
    name = "/".join(part for part in (group, key) if part)
    return f"{path}: '{name or '/'}'"


def _open_h5(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"gaze dataset file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _dataset(node: Any, path: Path, group: str, key: str) -> Any:
    item = node.get(key)
    if item is None:
        raise MissingKeyError(f"{_where(path, group, key)} is missing (expected dataset '{key}')")
    if not isinstance(item, h5py.Dataset):
        raise DatasetFormatError(f"{_where(path, group, key)} is not a dataset")
    return item


def _check_images(images: Any, schema: RealSchema, path: Path, group: str) -> None:
    size = schema.normalisation.size
    expected = (size, size, 3)
    where = _where(path, group, schema.images_key)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise DatasetFormatError(f"{where} must be N x {size} x {size} x 3, got shape {tuple(images.shape)}")
    if images.dtype != np.uint8:
        raise DatasetFormatError(f"{where} must be uint8, got {images.dtype}")


def _read_pitch_yaw(data: Any, column: int, count: int, path: Path, group: str, key: str) -> NDArray[np.float32]:
    where = _where(path, group, key)
    if data.ndim != 2 or data.shape[1] < column + 2:
        raise DatasetFormatError(
            f"{where} must be N x >={column + 2} (pitch, yaw from column {column}), got shape {tuple(data.shape)}"
        )
    if not np.issubdtype(data.dtype, np.floating):
        raise DatasetFormatError(f"{where} must hold floats (radians), got {data.dtype}")
    if data.shape[0] != count:
        raise DatasetFormatError(f"{where} has {data.shape[0]} rows but the images have {count}")
    return np.asarray(data[:, column : column + 2], dtype=np.float32)


def _read_person(file: Any, path: Path, group: str, key: str, schema: RealSchema) -> PersonSource:
    """Validate one person's arrays and read their labels (the images stay on disk)."""
    node = file
    if group:
        node = file.get(group)
        if node is None:
            raise MissingKeyError(f"{_where(path, group)} is missing (expected a person group '{group}')")
        if not isinstance(node, h5py.Group):
            raise DatasetFormatError(f"{_where(path, group)} is not a group")
    images = _dataset(node, path, group, schema.images_key)
    _check_images(images, schema, path, group)
    count = int(images.shape[0])
    gaze_data = _dataset(node, path, group, schema.gaze_key)
    gaze = _read_pitch_yaw(gaze_data, schema.gaze_column, count, path, group, schema.gaze_key)
    head_data = _dataset(node, path, group, schema.head_key)
    head = _read_pitch_yaw(head_data, schema.head_column, count, path, group, schema.head_key)
    if count == 0:
        logger.warning("%s holds no samples", _where(path, group))
    return PersonSource(key, path, group, gaze, head)


def faze_person_keys(path: str | Path) -> list[str]:
    """The person keys (top-level groups) of a FAZE/ST-ED HDF5 file, sorted."""
    p = Path(path)
    with _open_h5(p) as file:
        return sorted(k for k in file if isinstance(file[k], h5py.Group))


def xgaze_subject_key(path: str | Path) -> str:
    """The subject key of an ETH-XGaze file: its name without the extension (``subject0000``)."""
    return Path(path).stem


# --- the dataset of single strips ---------------------------------------------------------------------------


class RealStripDataset(Dataset[StripBatch]):
    """Eye strips of a real dataset, one sample per item as a :class:`StripBatch` of one.

    Strips are cut when asked for. HDF5 files are opened on first use in each process and kept open (so every
    DataLoader worker gets its own handles; pickling drops them). ``subject`` is the person's index in
    :attr:`person_keys`.
    """

    def __init__(
        self,
        persons: Sequence[PersonSource],
        schema: RealSchema,
        geometry: StripGeometry = DEFAULT_STRIP,
        *,
        channel_order: ChannelOrder | None = None,
        equalise: bool = False,
    ) -> None:
        keys = [p.key for p in persons]
        if len(set(keys)) != len(keys):
            raise ValueError(f"person keys must be unique, got {keys}")
        order = schema.channel_order if channel_order is None else channel_order
        if order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {order!r}")
        self.persons: tuple[PersonSource, ...] = tuple(persons)
        self.schema = schema
        self.geometry = geometry
        self.channel_order: ChannelOrder = order
        self.equalise = equalise
        self.mask = eye_region_mask(geometry)
        counts = np.array([len(p) for p in self.persons], dtype=np.int64)
        self._starts = np.concatenate(([0], np.cumsum(counts)))
        self._files: dict[Path, Any] = {}
        self._pid = os.getpid()

    @property
    def person_keys(self) -> tuple[str, ...]:
        """The persons' keys; a sample's ``subject`` indexes this."""
        return tuple(p.key for p in self.persons)

    def person_indices(self) -> list[NDArray[np.int64]]:
        """For each person, the dataset indices of their samples (int64 arrays)."""
        return [np.arange(self._starts[i], self._starts[i + 1]) for i in range(len(self.persons))]

    def locate(self, index: int) -> tuple[int, int]:
        """(person index, row in that person's arrays) of a dataset index."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        person = int(np.searchsorted(self._starts, index, side="right")) - 1
        return person, index - int(self._starts[person])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> StripBatch:
        person_index, row = self.locate(int(index))
        person = self.persons[person_index]
        face = self._read_face(person, row)
        cut = plan_strip_cut(
            torch.from_numpy(person.gaze[row]),
            torch.from_numpy(person.head[row]),
            self.schema.normalisation,
            self.geometry,
        )
        strip = warp_to_strip(face, cut.homography.numpy(), self.geometry)
        if self.equalise:
            # Equalised on the strip, not the face: the runtime only ever has the strip.
            strip = equalise_luma(strip)
        image = torch.from_numpy(np.ascontiguousarray(strip)).permute(2, 0, 1).to(torch.float32) / 255.0
        return StripBatch(
            image=image.unsqueeze(0),
            gaze=cut.gaze.to(torch.float32).unsqueeze(0),
            head=cut.head.to(torch.float32).unsqueeze(0),
            openness=torch.ones(1),
            closed=torch.zeros(1, dtype=torch.bool),
            subject=torch.tensor([person_index], dtype=torch.int64),
            mask=self.mask.unsqueeze(0).clone(),
        )

    def _read_face(self, person: PersonSource, row: int) -> NDArray[np.uint8]:
        file = self._file(person.path)
        node = file[person.group] if person.group else file
        face = np.asarray(node[self.schema.images_key][row])
        if self.channel_order == "BGR":
            face = face[:, :, ::-1]
        return np.ascontiguousarray(face)

    def _file(self, path: Path) -> Any:
        if self._pid != os.getpid():
            # A forked worker inherited the parent's handles; HDF5 handles must not cross a fork.
            self._files = {}
            self._pid = os.getpid()
        file = self._files.get(path)
        if file is None:
            file = _open_h5(path)
            self._files[path] = file
        return file

    def close(self) -> None:
        """Close the HDF5 files this process opened."""
        for file in self._files.values():
            file.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state


def faze_dataset(
    path: str | Path,
    persons: Sequence[str] | None = None,
    geometry: StripGeometry = DEFAULT_STRIP,
    *,
    channel_order: ChannelOrder = "RGB",
    equalise: bool = False,
    schema: RealSchema = FAZE_SCHEMA,
) -> RealStripDataset:
    """Strips from a FAZE/ST-ED HDF5 file (GazeCapture, MPIIFaceGaze): all persons, or those listed.

    Listed persons keep the given order (a sample's ``subject`` indexes it); otherwise keys are sorted.
    """
    p = Path(path)
    with _open_h5(p) as file:
        keys = sorted(k for k in file if isinstance(file[k], h5py.Group)) if persons is None else list(persons)
        sources = [_read_person(file, p, key, key, schema) for key in keys]
    logger.info("%s: %d persons, %d samples from %s", schema.name, len(sources), sum(map(len, sources)), p)
    return RealStripDataset(sources, schema, geometry, channel_order=channel_order, equalise=equalise)


def xgaze_dataset(
    paths: Sequence[str | Path],
    subjects: Sequence[str] | None = None,
    geometry: StripGeometry = DEFAULT_STRIP,
    *,
    channel_order: ChannelOrder = "BGR",
    equalise: bool = False,
    schema: RealSchema = XGAZE_SCHEMA,
) -> RealStripDataset:
    """Strips from ETH-XGaze files, one subject per file (keyed by :func:`xgaze_subject_key`).

    ``subjects`` keeps only those subjects, in that order; each must be among ``paths``.
    """
    by_key: dict[str, Path] = {}
    for path in map(Path, paths):
        key = xgaze_subject_key(path)
        if key in by_key:
            raise ValueError(f"two files give subject {key!r}: {by_key[key]} and {path}")
        by_key[key] = path
    keys = list(by_key) if subjects is None else list(subjects)
    sources = []
    for key in keys:
        if key not in by_key:
            raise MissingKeyError(f"subject {key!r} is not among the given files ({sorted(by_key)})")
        with _open_h5(by_key[key]) as file:
            sources.append(_read_person(file, by_key[key], "", key, schema))
    logger.info("%s: %d subjects, %d samples", schema.name, len(sources), sum(map(len, sources)))
    return RealStripDataset(sources, schema, geometry, channel_order=channel_order, equalise=equalise)


def collate_strips(items: Sequence[StripBatch]) -> StripBatch:
    """Concatenate single samples into a batch (the ``collate_fn`` for :class:`RealStripDataset`)."""
    return StripBatch.cat(list(items))


# --- pairs of the same person -------------------------------------------------------------------------------


class SamePersonPairSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (source, target) index pairs, both of the same person, as ST-ED trains.

    Each epoch visits every sample once as a source, in an order shuffled by a ``torch.Generator`` seeded
    from ``seed`` and the epoch (see :meth:`set_epoch`), and pairs it with another sample of its person drawn
    uniformly (itself only when the person has one sample). The same seed and epoch give the same batches.
    """

    def __init__(
        self,
        person_indices: Sequence[NDArray[np.integer[Any]]],
        batch_size: int,
        *,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        groups = [np.asarray(g, dtype=np.int64).reshape(-1) for g in person_indices]
        sizes = np.array([g.size for g in groups], dtype=np.int64)
        # Flattened per-source tables: dataset index, its person's first slot in `_sources`, its position
        # within the person, and the person's size.
        self._sources = np.concatenate([*groups, np.zeros(0, dtype=np.int64)])
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1])) if sizes.size else sizes
        self._start = np.repeat(starts, sizes)
        self._size = np.repeat(sizes, sizes)
        self._position = np.arange(self._sources.size, dtype=np.int64) - self._start
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle the next iteration uses."""
        self.epoch = epoch

    def pairs(self) -> NDArray[np.int64]:
        """This epoch's (source, target) dataset indices, ``n x 2`` int64, in visiting order."""
        n = self._sources.size
        if n == 0:
            return np.zeros((0, 2), dtype=np.int64)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=generator).numpy()
        sizes = self._size[order]
        # Draw among the person's other samples: an offset of 1..size-1 from the source, wrapping around.
        draws = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
        offsets = np.where(sizes > 1, 1 + np.floor(draws * (sizes - 1)).astype(np.int64), 0)
        target_slot = self._start[order] + (self._position[order] + offsets) % sizes
        return np.stack((self._sources[order], self._sources[target_slot]), axis=1)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        pairs = self.pairs()
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                return
            yield [(int(s), int(t)) for s, t in chunk]

    def __len__(self) -> int:
        n = self._sources.size
        return int(n // self.batch_size) if self.drop_last else math.ceil(n / self.batch_size)


class PairDataset(Dataset[tuple[StripBatch, StripBatch]]):
    """Reads (source, target) index pairs of a :class:`RealStripDataset`."""

    def __init__(self, strips: RealStripDataset) -> None:
        self.strips = strips

    def __len__(self) -> int:
        return len(self.strips)

    def __getitem__(self, pair: tuple[int, int]) -> tuple[StripBatch, StripBatch]:
        source, target = pair
        return self.strips[source], self.strips[target]


def collate_pairs(items: Sequence[tuple[StripBatch, StripBatch]]) -> PairBatch:
    """Batch (source, target) samples into a :class:`PairBatch`."""
    return PairBatch(
        source=StripBatch.cat([s for s, _ in items]),
        target=StripBatch.cat([t for _, t in items]),
    )


def pair_loader(
    strips: RealStripDataset,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader[tuple[StripBatch, StripBatch]]:
    """A DataLoader of :class:`PairBatch` es of same-person pairs, deterministic for a seed and epoch.

    For later epochs call ``loader.batch_sampler.set_epoch(epoch)`` or build a new loader.
    """
    sampler = SamePersonPairSampler(strips.person_indices(), batch_size, seed=seed, drop_last=drop_last)
    sampler.set_epoch(epoch)
    return DataLoader(
        PairDataset(strips),
        batch_sampler=sampler,
        collate_fn=collate_pairs,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


# --- splits by person ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonSplit:
    """Disjoint person keys for training, validation and testing."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def split_persons(
    keys: Sequence[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> PersonSplit:
    """Split person keys at random (by ``seed``) into train/val/test with about the given fractions.

    The result depends only on the set of keys, the fractions and the seed, not on the keys' order; no person
    is in two parts, and every person is in one.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("person keys must be unique")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ordered = sorted(keys)
    n = len(ordered)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [ordered[i] for i in perm]
    first = round(fractions[0] * n)
    second = min(n, first + round(fractions[1] * n))
    return PersonSplit(tuple(shuffled[:first]), tuple(shuffled[first:second]), tuple(shuffled[second:]))
