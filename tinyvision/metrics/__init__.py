"""Metrics with torchmetrics' names and API (``update`` / ``compute`` / ``reset``): COCO mean
average precision for detection and instance segmentation."""
from tinyvision.metrics.detection import MeanAveragePrecision

__all__ = ["MeanAveragePrecision"]
