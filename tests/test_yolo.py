"""The YOLO-style grid detector (no torchvision counterpart): its box decoding by hand, its loss
by float64 finite differences and by a hand-built case, and that a few steps fit one batch."""
from __future__ import annotations

import numpy as np

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.detection.yolo import assign_targets, decode_boxes, grid_loss, yolo_loss


def test_decode_by_hand():
    raw = np.zeros((8, 8, 1, 4))
    raw[2, 3, 0] = [0.5, 0.5, 0.5, 0.25]          # cell (row 2, col 3) of 8 px; w = 0.5^2 64, h = 0.25^2 64
    box = decode_boxes(raw, 8, (64, 64))[2, 3, 0]
    np.testing.assert_allclose(box, [28 - 8, 20 - 2, 28 + 8, 20 + 2])


def test_loss_by_hand_and_gradcheck():
    """One image, S = 2, B = 1, C = 2, one truth centred in cell (0, 1): a prediction that puts
    exactly that box there with confidence = its IoU (1) and the right class has only the
    no-object confidence of the other cells left: 0.5 sum conf^2."""
    logit = lambda p: np.log(p / (1 - p))
    pred = np.full((1, 2, 2, 1 * 5 + 2), -30.0)    # sigmoid ~ 0: no boxes, no confidence elsewhere
    box = [40.0, 8.0, 56.0, 24.0]                   # centre (48, 16): cell row 0, col 1 of 32 px
    pred[0, 0, 1, :5] = [logit(0.5), logit(0.5), logit(0.5), logit(0.5), 30.0]   # sqrt(16/64) = 0.5
    pred[0, 0, 1, 5:] = [-30.0, 30.0]              # class 1
    targets = [{"boxes": tv.tensor([box], dtype=tv.float64), "labels": tv.tensor([1])}]
    loss = yolo_loss(tv.tensor(pred), targets, 2, 1, (64, 64))
    assert loss["coord"].item() < 1e-20 and loss["classification"].item() < 1e-20
    assert loss["confidence"].item() < 1e-12
    # finite differences on a random prediction (float64), with an empty image in the batch; the
    # targets (who answers for which truth, and its IoU as confidence target) are constants, as
    # in YOLOv1, so they are fixed first
    rng = np.random.default_rng(0)
    x = tv.tensor(rng.standard_normal((2, 2, 2, 2 * 5 + 3)), requires_grad=True)
    targets = [{"boxes": tv.tensor([[3.0, 5.0, 30.0, 20.0], [40.0, 36.0, 60.0, 62.0]], dtype=tv.float64),
                "labels": tv.tensor([0, 2])},
               {"boxes": tv.zeros((0, 4), dtype=tv.float64), "labels": tv.zeros(0, dtype=tv.int64)}]
    boxes_raw = (1 / (1 + np.exp(-x.detach().numpy()[..., :10]))).reshape(2, 2, 2, 2, 5)
    assignment = assign_targets(boxes_raw, targets, 2, (64, 64), 3)
    assert assignment[0].sum() == 2 and assignment[3][1].sum() == 0      # two responsible predictors, image 1 empty
    assert tv.gradcheck(lambda p: sum(grid_loss(p, assignment, 2).values()), [x])


def test_fits_one_batch_and_detects():
    from tinyvision import optim
    from tinyvision.data import shapes_scenes
    from tinyvision.train.detect import collate

    tv.manual_seed(0)
    model = create_model("yolo_resnet18", num_classes=4)
    images, targets = collate([shapes_scenes(4, 64, seed=0)[i] for i in range(4)])
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = None
    for _ in range(5):
        losses = model(images, targets)
        total = sum(losses.values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.5 * first
    model.eval()
    detections = model(images)
    assert len(detections) == 4 and set(detections[0]) == {"boxes", "scores", "labels"}
