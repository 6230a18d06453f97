"""Training of the gaze redirector and its gaze/head estimators: losses, configs, trainer, checkpoints, CLI."""
