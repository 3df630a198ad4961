"""Detection models with torchvision's structure and state_dict keys: RetinaNet (one stage,
focal loss), Faster R-CNN and Mask R-CNN (two stages), and the machinery they share (anchors, box coder, matcher, transform). See
docs/detection.md."""
from tinyvision.models.detection.faster_rcnn import (FasterRCNN, fasterrcnn_resnet18_fpn,
                                                     fasterrcnn_resnet50_fpn)
from tinyvision.models.detection.mask_rcnn import MaskRCNN, maskrcnn_resnet18_fpn, maskrcnn_resnet50_fpn
from tinyvision.models.detection.yolo import YOLOv1, yolo_resnet18
from tinyvision.models.detection.retinanet import (RetinaNet, retinanet_resnet18_fpn,
                                                   retinanet_resnet50_fpn)
