"""Training of the gaze redirector: losses (and, later, the trainer)."""
