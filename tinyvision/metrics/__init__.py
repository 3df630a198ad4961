"""Metrics (torchmetrics-style names): image quality (PSNR, SSIM)."""
from tinyvision.metrics.image import psnr, ssim  # noqa: F401
