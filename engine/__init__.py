"""Mirada engine: synthetic eye data, the gaze redirector, and the real-time corrector."""

__version__ = "0.1.0"
