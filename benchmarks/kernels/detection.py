"""Detection kernels: nms and roi_align (forward + backward) against torchvision's C++ ops, float32.

torchvision is not part of ``make test``; run this in an environment that has it, with
tinyvision installed there too::

    pip install torch==2.14.1 torchvision==0.29.1 && pip install -e . numba
    python -m benchmarks.kernels detection       # (CPU, 2 threads for everyone)

Without torchvision the module prints why and measures nothing.

Cases:
* ``nms N``: N boxes (1,000 and 10,000) scattered around 50 objects with jitter, as a detector's
  raw output, random scores, IoU threshold 0.5: ``tinyvision.ops.nms`` (Numba rung, the
  reference for 1,000) vs ``torchvision.ops.nms``.
* ``roi_align fwd+bwd``: 512 RoIs on FPN-sized maps, ``tinyvision.ops.roi_align`` + ``backward()``
  (autograd included) vs torchvision's on the same input and output gradient: P2 of an
  800x800 image at stride 4 (1, 256, 200, 200) with Faster R-CNN's box-head settings (7x7,
  sampling_ratio 2), and P3 (1, 256, 100, 100) with the mask head's (14x14, sampling_ratio 2).
"""
from __future__ import annotations

import numpy as np

import tinyvision as tv
from benchmarks.runner import Report
from tinyvision import ops
from tinyvision.kernels.dispatch import use

RNG = np.random.default_rng(0)


def detections(n: int, image: float = 800.0, objects: int = 50) -> tuple[np.ndarray, np.ndarray]:
    centres = RNG.uniform(50, image - 50, (objects, 2))
    sizes = RNG.uniform(20, 200, (objects, 2))
    pick = RNG.integers(0, objects, n)
    c = centres[pick] + RNG.normal(0, 8, (n, 2))
    wh = sizes[pick] * RNG.uniform(0.8, 1.25, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1).astype(np.float32)
    return boxes, RNG.random(n).astype(np.float32)


def rois(k: int, image: float = 800.0) -> np.ndarray:
    xy = RNG.uniform(0, image * 0.8, (k, 2))
    wh = RNG.uniform(16, image * 0.4, (k, 2))
    return np.concatenate([np.zeros((k, 1)), xy, xy + wh], axis=1).astype(np.float32)


def run(device: str = "cpu") -> Report:
    report = Report(f"kernels_detection_{device}")
    try:
        import torch
        import torchvision
    except ImportError:
        print("detection: skipped (needs torchvision: see this module's docstring)")
        return report
    if device != "cpu":
        print("detection: only the CPU comparison is written (the GPU rungs are checked by tests)")
        return report
    for n in (1000, 10000):
        boxes, scores = detections(n)
        tb, ts = torch.tensor(boxes), torch.tensor(scores)
        ob, os_ = tv.tensor(boxes), tv.tensor(scores)
        expected = torchvision.ops.nms(tb, ts, 0.5).numpy()
        assert np.array_equal(ops.nms(ob, os_, 0.5).numpy(), expected), "nms differs from torchvision"
        case = f"nms {n} boxes (keeps {len(expected)})"
        report.add(case, "torch", lambda: torchvision.ops.nms(tb, ts, 0.5), repeats=15)
        for rung in (("cpu", "reference") if n <= 1000 else ("cpu",)):
            with use(rung):
                report.add(case, rung, lambda: ops.nms(ob, os_, 0.5), repeats=15 if rung == "cpu" else 3, warmup=1)
    for name, shape, scale, size in (("P2 7x7", (1, 256, 200, 200), 0.25, 7), ("P3 14x14", (1, 256, 100, 100), 0.125, 14)):
        x = RNG.standard_normal(shape).astype(np.float32)
        r = rois(512)
        g = RNG.standard_normal((512, shape[1], size, size)).astype(np.float32)
        tx, tr, tg = torch.tensor(x, requires_grad=True), torch.tensor(r), torch.tensor(g)
        ox, orr, og = tv.tensor(x, requires_grad=True), tv.tensor(r), tv.tensor(g)

        def theirs() -> None:
            tx.grad = None
            torchvision.ops.roi_align(tx, tr, size, scale, 2, False).backward(tg)

        def ours() -> None:
            ox.grad = None
            ops.roi_align(ox, orr, size, scale, 2, False).backward(og)

        theirs(), ours()
        np.testing.assert_allclose(ox.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        case = f"roi_align fwd+bwd {name} 512 RoIs"
        report.add(case, "torch", theirs, repeats=5, warmup=1)
        with use("cpu"):
            report.add(case, "cpu", ours, repeats=5, warmup=1)
    return report


if __name__ == "__main__":
    from benchmarks.runner import set_threads

    set_threads(2)
    run().print_and_save()
