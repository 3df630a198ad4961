"""Detection models with torchvision's structure and state_dict keys: RetinaNet (one stage,
focal loss), and the machinery they share (anchors, box coder, matcher, transform). See
docs/detection.md."""
from tinyvision.models.detection.retinanet import (RetinaNet, retinanet_resnet18_fpn,
                                                   retinanet_resnet50_fpn)
