"""Metrics with torchmetrics' names and API (``update`` / ``compute`` / ``reset``) and functional
forms: segmentation (confusion matrix, pixel accuracy, IoU, panoptic quality), image quality
(PSNR, SSIM) and detection (COCO mean average precision, boxes and masks)."""
from tinyvision.metrics.detection import MeanAveragePrecision
from tinyvision.metrics.image import psnr, ssim
from tinyvision.metrics.segmentation import (JaccardIndex, MeanIoU, PanopticQuality, confusion_matrix, mean_iou,
                                             panoptic_quality, per_class_iou, pixel_accuracy)

__all__ = ["JaccardIndex", "MeanAveragePrecision", "MeanIoU", "PanopticQuality", "confusion_matrix", "mean_iou",
           "panoptic_quality", "per_class_iou", "pixel_accuracy", "psnr", "ssim"]
