"""Pre-rendered pair caches: render once (in the background or on another machine), train from memory.

The live renderer makes a few hundred strips a second on a 2-core CPU; a training run on such a machine reads
pairs from a cache instead, at memory speed, so it never waits for data. A cache is an HDF5 file of uint8 strips
and float32 labels (with the pupil positions, for the pupil loss), with the synthetic config it was rendered with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from tqdm import tqdm

from engine.data.batch import PairBatch, StripBatch
from engine.data.synth.sampler import SynthConfig, SynthSampler
from engine.data.synth.subject import Split

log = logging.getLogger(__name__)

_LABELS = ("gaze", "head", "openness", "closed", "subject")


def _to_u8(x: Tensor) -> npt.NDArray[np.uint8]:
    """B x C x H x W floats in [0, 1] → B x H x W x C uint8."""
    out: npt.NDArray[np.uint8] = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out


def write_cache(sampler: SynthSampler, path: Path, pairs: int, progress: bool = True) -> None:
    """Render ``pairs`` pairs from ``sampler`` (its batches 0, 1, ...) into an HDF5 cache at ``path``."""
    if pairs < 1:
        raise ValueError(f"pairs must be positive, got {pairs}")
    geo = sampler.config.geometry
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["synth_config"] = json.dumps(asdict(sampler.config), default=str)
        f.attrs["split"] = sampler.split.value
        f.attrs["seed"] = sampler.seed
        rows = min(64, pairs)
        for role in ("source", "target"):
            f.create_dataset(
                f"{role}/image", (pairs, geo.height, geo.width, 3), np.uint8, chunks=(rows, geo.height, geo.width, 3)
            )
            f.create_dataset(
                f"{role}/mask", (pairs, geo.height, geo.width), np.uint8, chunks=(rows, geo.height, geo.width)
            )
            f.create_dataset(f"{role}/gaze", (pairs, 2), np.float32)
            f.create_dataset(f"{role}/head", (pairs, 2), np.float32)
            f.create_dataset(f"{role}/openness", (pairs,), np.float32)
            f.create_dataset(f"{role}/closed", (pairs,), bool)
            f.create_dataset(f"{role}/subject", (pairs,), np.int64)
            f.create_dataset(f"{role}/pupil", (pairs, 2, 2), np.float32)
        done, index = 0, 0
        with tqdm(total=pairs, desc="rendering pairs", unit="pair", disable=not progress) as bar:
            while done < pairs:
                n = min(sampler.batch_size, pairs - done)
                batch = sampler.pairs(index, n)
                for role, strips in (("source", batch.source), ("target", batch.target)):
                    f[f"{role}/image"][done : done + n] = _to_u8(strips.image)
                    f[f"{role}/mask"][done : done + n] = _to_u8(strips.mask)[..., 0]
                    for name in _LABELS:
                        f[f"{role}/{name}"][done : done + n] = getattr(strips, name).cpu().numpy()
                    if strips.pupil is None:
                        raise ValueError("the sampler gave strips without pupil positions")
                    f[f"{role}/pupil"][done : done + n] = strips.pupil.cpu().numpy()
                done, index = done + n, index + 1
                bar.update(n)
    log.info("wrote %d pairs to %s", pairs, path)


class CachedPairs:
    """Random pair batches from a cache, held in memory as uint8 (128 KiB a pair at 64 x 256: 2 strips, 2 masks).

    Deterministic for a seed: batch ``k`` draws its rows with a generator seeded by (seed, k).
    """

    def __init__(self, path: Path, batch_size: int = 64, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if not path.exists():
            raise FileNotFoundError(f"no pair cache at {path}")
        self.path, self.batch_size, self.seed = path, batch_size, seed
        self.device = torch.device(device)
        self._next = 0
        with h5py.File(path, "r") as f:
            try:
                self._data = {
                    role: {key: torch.from_numpy(f[f"{role}/{key}"][()]) for key in ("image", "mask", *_LABELS)}
                    for role in ("source", "target")
                }
            except KeyError as err:
                raise KeyError(f"{path} is not a pair cache: missing {err}") from err
            # caches written before the pupil positions were stored (session 16) have none
            for role in ("source", "target"):
                if f"{role}/pupil" in f:
                    self._data[role]["pupil"] = torch.from_numpy(f[f"{role}/pupil"][()])
        self.size = int(self._data["source"]["image"].shape[0])

    def __len__(self) -> int:
        return self.size

    def pairs(self, index: int | None = None) -> PairBatch:
        """Batch ``index`` (the next one if None)."""
        if index is None:
            index, self._next = self._next, self._next + 1
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        rows = torch.randint(0, self.size, (self.batch_size,), generator=gen)
        return PairBatch(self._strips("source", rows), self._strips("target", rows))

    def _strips(self, role: str, rows: Tensor) -> StripBatch:
        d = self._data[role]
        # contiguous(): the permuted uint8 rows would otherwise stay channels-last, and GroupNorm's CPU backward
        # crashes on channels-last input in torch 2.13 (and every other module expects the default layout).
        image = (d["image"][rows].to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0).contiguous()
        mask = d["mask"][rows].to(self.device, non_blocking=True).unsqueeze(1).float() / 255.0
        labels = {name: d[name][rows].to(self.device) for name in _LABELS}
        pupil = d["pupil"][rows].to(self.device) if "pupil" in d else None
        return StripBatch(image=image, mask=mask, pupil=pupil, **labels)

    def __iter__(self) -> Iterator[PairBatch]:
        while True:
            yield self.pairs()


class PairSource(Protocol):
    """Anything that serves pair batch ``index`` (the next one if None): a live sampler or a cache."""

    def pairs(self, index: int | None = None) -> PairBatch: ...


def pair_source(
    synth: SynthConfig,
    split: Split,
    seed: int,
    batch_size: int,
    device: torch.device | str,
    cache: str | None = None,
) -> PairSource:
    """Training pairs from a pre-rendered cache when one is given, else rendered live."""
    if cache is not None:
        return CachedPairs(Path(cache), batch_size, seed, device)
    return SynthSampler(synth, split, seed, batch_size, device)
