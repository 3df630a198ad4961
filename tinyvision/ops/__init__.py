"""Detection operators with torchvision.ops's names, signatures and conventions: box geometry
and overlaps, NMS, RoIAlign/RoIPool (kernel ladders in ``tinyvision.kernels``), the focal and
IoU-family losses, and the Feature Pyramid Network. See docs/detection.md."""
from tinyvision.ops.box_losses import (complete_box_iou_loss, distance_box_iou_loss,
                                       generalized_box_iou_loss)
from tinyvision.ops.boxes import (batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image,
                                  complete_box_iou, distance_box_iou, generalized_box_iou,
                                  masks_to_boxes, nms, remove_small_boxes)
from tinyvision.ops.feature_pyramid_network import (ExtraFPNBlock, FeaturePyramidNetwork,
                                                    LastLevelMaxPool, LastLevelP6P7)
from tinyvision.ops.focal_loss import sigmoid_focal_loss
from tinyvision.ops.poolers import MultiScaleRoIAlign
from tinyvision.ops.roi_align import RoIAlign, roi_align
from tinyvision.ops.roi_pool import RoIPool, roi_pool
