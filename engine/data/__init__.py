"""Eye-strip data: the procedural synthetic renderer and loaders for real gaze datasets."""

from engine.data.batch import PairBatch, StripBatch

__all__ = ["PairBatch", "StripBatch"]
