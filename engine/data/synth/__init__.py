"""Procedural synthetic eye strips: subjects, ray-cast scenes, webcam effects and a pair sampler."""

from engine.data.synth.sampler import SynthConfig, SynthRenderer, SynthSampler
from engine.data.synth.subject import Split, SubjectPool

__all__ = ["Split", "SubjectPool", "SynthConfig", "SynthRenderer", "SynthSampler"]
