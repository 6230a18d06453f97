"""Evaluation of the gaze redirector: redirection, disentanglement and image-quality metrics."""

from engine.eval.metrics import EvalConfig, RedirectionMetrics, evaluate_redirector, markdown_table, psnr, ssim

__all__ = ["EvalConfig", "RedirectionMetrics", "evaluate_redirector", "markdown_table", "psnr", "ssim"]
