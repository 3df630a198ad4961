"""Joint transforms: move an image and its target together, in the style of torchvision's
transforms v2. A transform is called as ``image, target = t(image, target)``.

``image`` is (C, H, W) float; ``target`` a dict with any of
    "boxes"    (N, 4) float (x0, y0, x1, y1) in pixel edges (pixel (r, c) covers [c, c+1) x [r, r+1)),
    "labels"   (N,) int,
    "masks"    (N, H, W) bool instance masks,
    "semantic" (H, W) int class map (0 = background),
and other keys, which pass through untouched. N = 0 (an image without objects) is allowed.

How everything moves the same way: each geometric transform is one image operation of
``tinyvision.data.functional`` (flip, crop, resize, affine). The image goes through it with the
transform's interpolation; masks and the class map go through the *same* function with
nearest interpolation (so with ``interpolation="nearest"`` every mask pixel lands exactly where
its image pixel lands), and uncovered pixels become background (mask False, class 0).
Boxes: when masks are present they are recomputed from the moved masks (tight and exact, also
after a rotation, where a rotated box's corners would only give a looser enclosing box), and an
object whose mask left the image is dropped with its label and box. Without masks, boxes are
moved analytically (flips, crops and resizes exactly; affine maps as the enclosing box of the
four moved corners), clipped to the image, and dropped when empty.

Random parameters are drawn by the image transforms of ``tinyvision.data.transforms`` (the same
distributions, from tinyvision's seeded generator). ``SimpleCopyPaste`` (Ghiasi et al. 2021)
pastes objects between images.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tinyvision.data import functional as F
from tinyvision.data import transforms as T
from tinyvision.data.shapes import mask_to_box
from tinyvision.random import generator

PER_OBJECT = ("boxes", "labels", "masks", "iscrowd", "area")  # keys indexed by object
KNOWN = ("boxes", "labels", "masks", "semantic")


def check_target(image: np.ndarray, target: dict, op: str, num_classes: int | None = None) -> None:
    """Refuse a target that does not fit its image, naming the op, the key and the shapes:
    masks or class map of another size, lengths that disagree, boxes outside the image or
    inverted, labels outside [0, num_classes) (when given), or a target with none of the
    known keys (an image without objects is ``boxes`` (0, 4), ``labels`` (0,))."""
    F.check_image(image, op)
    if not isinstance(target, dict):
        raise TypeError(f"{op}: target must be a dict with 'boxes', 'labels', 'masks' and/or 'semantic', "
                        f"got {type(target).__name__}")
    if not any(k in target for k in KNOWN):
        raise ValueError(f"{op}: target has none of {KNOWN} (keys: {sorted(target)}); an image without objects "
                         "is {'boxes': zeros((0, 4)), 'labels': zeros((0,), int)}")
    _, h, w = image.shape
    lengths = {k: len(target[k]) for k in PER_OBJECT if k in target}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{op}: per-object entries disagree in length: {lengths}")
    if "masks" in target and np.shape(target["masks"])[1:] != (h, w):
        raise ValueError(f"{op}: masks of shape {np.shape(target['masks'])} do not fit the image of shape "
                         f"{image.shape}: expected (N, {h}, {w})")
    if "semantic" in target and np.shape(target["semantic"]) != (h, w):
        raise ValueError(f"{op}: semantic of shape {np.shape(target['semantic'])} does not fit the image of "
                         f"shape {image.shape}: expected ({h}, {w})")
    if "boxes" in target:
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]) | \
            (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{op}: box {i} = {boxes[i].tolist()} is not inside the {w}x{h} image with "
                             "x0 < x1 and y0 < y1 (boxes are (x0, y0, x1, y1) in pixels; clip them first)")
    if num_classes is not None:
        for key in ("labels", "semantic"):
            if key in target and np.size(target[key]):
                v = np.asarray(target[key])
                if v.min() < 0 or v.max() >= num_classes:
                    raise ValueError(f"{op}: {key} hold classes in [{v.min()}, {v.max()}], outside "
                                     f"[0, num_classes={num_classes})")


def _keep_objects(target: dict, keep: np.ndarray) -> dict:
    return {k: (np.asarray(v)[keep] if k in PER_OBJECT else v) for k, v in target.items()}


def _move(image: np.ndarray, target: dict, op: str, image_fn: Callable[[np.ndarray, str], np.ndarray],
          box_fn: Callable[[np.ndarray], np.ndarray] | None) -> tuple[np.ndarray, dict]:
    """Apply one geometric map: ``image_fn(array, interpolation)`` to the image (with the
    transform's interpolation, chosen by the caller) and, nearest, to masks and class map;
    ``box_fn`` moves boxes analytically when there are no masks."""
    check_target(image, target, op)
    out = dict(target)
    new_image = image_fn(image, "")
    _, h, w = new_image.shape
    if "semantic" in target:
        sem = np.asarray(target["semantic"])
        moved = image_fn(sem[None].astype(np.float32), "nearest")[0]
        out["semantic"] = np.rint(moved).astype(sem.dtype)
    if "masks" in target:
        masks = np.asarray(target["masks"])
        if len(masks):
            moved = image_fn(masks.astype(np.float32), "nearest") >= 0.5
        else:
            moved = np.zeros((0, h, w), dtype=bool)
        out["masks"] = moved.astype(masks.dtype)
        keep = moved.any(axis=(1, 2))
        if "boxes" in target:
            boxes = np.zeros((len(moved), 4), dtype=np.asarray(target["boxes"]).dtype)
            if keep.any():
                boxes[keep] = [mask_to_box(m) for m in moved[keep]]
            out["boxes"] = boxes
        return new_image, _keep_objects(out, keep)
    if "boxes" in target and box_fn is not None:
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        moved = box_fn(boxes)
        moved[:, 0::2] = np.clip(moved[:, 0::2], 0, w)
        moved[:, 1::2] = np.clip(moved[:, 1::2], 0, h)
        keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
        out["boxes"] = moved.astype(np.asarray(target["boxes"]).dtype)
        return new_image, _keep_objects(out, keep)
    return new_image, out


class Compose:
    """Apply joint ``transforms`` one after another: ``image, target = t(image, target)``."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t!r},\n" for t in self.transforms) + ")"


def hflip(image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
    """Mirror left-right: column c -> W - 1 - c; box x0' = W - x1, x1' = W - x0."""
    w = image.shape[-1]
    return _move(image, target, "hflip", lambda a, _: F.hflip(a),
                 lambda b: np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1))


def vflip(image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
    """Mirror top-bottom: row r -> H - 1 - r."""
    h = image.shape[-2]
    return _move(image, target, "vflip", lambda a, _: F.vflip(a),
                 lambda b: np.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], axis=1))


def resized_crop(image: np.ndarray, target: dict, top: int, left: int, height: int, width: int,
                 size: Sequence[int], interpolation: str = "bilinear") -> tuple[np.ndarray, dict]:
    """Cut the window (top, left, height, width) and resize it to ``size`` (h, w)."""
    out_h, out_w = size
    sx, sy = out_w / width, out_h / height

    def boxes(b: np.ndarray) -> np.ndarray:
        return (b - [left, top, left, top]) * [sx, sy, sx, sy]

    return _move(image, target, "resized_crop",
                 lambda a, mode: F.resized_crop(a, top, left, height, width, (out_h, out_w), mode or interpolation),
                 boxes)


def affine(image: np.ndarray, target: dict, angle: float, translate: Sequence[float], scale: float,
           shear: Sequence[float], interpolation: str = "nearest") -> tuple[np.ndarray, dict]:
    """``F.affine`` on everything (about the image centre); boxes without masks become the
    enclosing box of their four moved corners."""
    _, h, w = image.shape
    inverse = F._inverse_affine_matrix((0.0, 0.0), angle, translate, scale, tuple(shear))
    forward = np.linalg.inv(np.vstack([inverse, [0.0, 0.0, 1.0]]))[:2]

    def boxes(b: np.ndarray) -> np.ndarray:
        # corners in coordinates centred on the image (a pixel edge x has centred x - W/2)
        xs, ys = b[:, [0, 2, 2, 0]] - w / 2, b[:, [1, 1, 3, 3]] - h / 2
        mx = forward[0, 0] * xs + forward[0, 1] * ys + forward[0, 2] + w / 2
        my = forward[1, 0] * xs + forward[1, 1] * ys + forward[1, 2] + h / 2
        return np.stack([mx.min(1), my.min(1), mx.max(1), my.max(1)], axis=1)

    return _move(image, target, "affine",
                 lambda a, mode: F.affine(a, angle, translate, scale, shear, mode or interpolation), boxes)


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        return hflip(image, target) if generator().random() < self.p else (image, target)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        return vflip(image, target) if generator().random() < self.p else (image, target)

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


class Resize:
    """Resize to ``size`` (h, w) (or an int: (n, n)); the image with ``interpolation``."""

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear") -> None:
        self.size, self.interpolation = F._pair(size, "Resize size"), interpolation

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        _, h, w = F.check_image(image, "Resize").shape
        return resized_crop(image, target, 0, 0, h, w, self.size, self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomResizedCrop(T.RandomResizedCrop):
    """A random window (area fraction ``scale``, aspect ``ratio``) resized to ``size``: the image
    transform's parameters, applied to everything."""

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:  # type: ignore[override]
        params = self.get_params(F.check_image(image, "RandomResizedCrop"))
        return resized_crop(image, target, *params, self.size, self.interpolation)


class RandomAffine(T.RandomAffine):
    """Random rotation, translation, scale and shear about the image centre (parameters as the
    image transform's; uncovered pixels are 0 / background)."""

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:  # type: ignore[override]
        _, h, w = F.check_image(image, "RandomAffine").shape
        angle, translate, scale, shear = self.get_params(h, w)
        return affine(image, target, angle, translate, scale, shear, self.interpolation)


class RandomRotation(T.RandomRotation):
    """Rotate by an angle from ``degrees``, counter-clockwise (as torchvision's rotate)."""

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:  # type: ignore[override]
        F.check_image(image, "RandomRotation")
        return affine(image, target, -T._uniform(*self.degrees), (0.0, 0.0), 1.0, (0.0, 0.0), self.interpolation)


class CheckTarget:
    """Validate (image, target) (see ``check_target``), labels against ``num_classes``; put it
    first in a pipeline so that bad data fails where it enters."""

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes

    def __call__(self, image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
        check_target(image, target, "CheckTarget", self.num_classes)
        return image, target


# ----------------------------------------------------------------------------- Copy-Paste

def copy_paste(image: np.ndarray, target: dict, paste_image: np.ndarray, paste_target: dict,
               paste: Sequence[int] | np.ndarray) -> tuple[np.ndarray, dict]:
    """Paste the objects ``paste`` (indices) of (paste_image, paste_target) onto (image, target).

    The pasted objects' pixels are copied over (they end up on top, owning their pixels); each
    object of ``target`` loses the pixels now covered (its mask shrinks, its box is recomputed
    from what is left) and disappears when nothing is left; the pasted objects follow, with
    their masks, boxes from their masks, and labels; the class map takes their classes.
    Both targets need "masks" and "labels"; the images must have the same size.
    """
    check_target(image, target, "copy_paste")
    check_target(paste_image, paste_target, "copy_paste")
    if image.shape != paste_image.shape:
        raise ValueError(f"copy_paste: images of shapes {image.shape} and {paste_image.shape} differ; "
                         "resize (or crop) the source first")
    for name, t in (("target", target), ("paste_target", paste_target)):
        if "masks" not in t or "labels" not in t:
            raise ValueError(f"copy_paste: {name} needs 'masks' and 'labels', has {sorted(t)}")
    paste = np.asarray(paste, dtype=np.int64).reshape(-1)
    src_masks = np.asarray(paste_target["masks"]).astype(bool)[paste]
    src_labels = np.asarray(paste_target["labels"])[paste]
    covered = src_masks.any(axis=0)                                   # (H, W) pixels taken over
    out_image = np.where(covered[None], paste_image, image).astype(image.dtype)
    masks = np.asarray(target["masks"]).astype(bool) & ~covered[None]
    keep = masks.any(axis=(1, 2))                                     # fully covered -> dropped
    # a later pasted object covers an earlier one where they overlap (paint order)
    owned = src_masks.copy()
    for i in range(len(owned) - 1):
        owned[i] &= ~owned[i + 1:].any(axis=0)
    pasted_keep = owned.any(axis=(1, 2))
    out = {k: v for k, v in target.items() if k not in PER_OBJECT}
    all_masks = np.concatenate([masks[keep], owned[pasted_keep]])
    out["masks"] = all_masks.astype(np.asarray(target["masks"]).dtype)
    out["labels"] = np.concatenate([np.asarray(target["labels"])[keep], src_labels[pasted_keep]])
    if "boxes" in target:
        dtype = np.asarray(target["boxes"]).dtype
        out["boxes"] = (np.stack([mask_to_box(m) for m in all_masks]) if len(all_masks)
                        else np.zeros((0, 4))).astype(dtype)
    if "semantic" in target:
        semantic = np.array(target["semantic"], copy=True)
        for m, label in zip(owned, src_labels):
            semantic[m] = label
        out["semantic"] = semantic
    return out_image, out


class SimpleCopyPaste:
    """Copy-Paste on a batch (Ghiasi et al. 2021, "simple" = no blending, as torchvision's
    reference ``SimpleCopyPaste``): image i receives a random subset (each object with
    probability 1/2, at least one when there are any) of the objects of image i - 1 (the batch
    rolled by one). Call it on lists: ``images, targets = SimpleCopyPaste()(images, targets)``.
    The paper pairs it with large-scale jitter of both images (e.g. RandomResizedCrop first).
    """

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"SimpleCopyPaste: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, images: Sequence[np.ndarray], targets: Sequence[dict]) -> tuple[list, list]:
        if len(images) != len(targets):
            raise ValueError(f"SimpleCopyPaste: {len(images)} images but {len(targets)} targets")
        rng = generator()
        out_images, out_targets = [], []
        for i, (image, target) in enumerate(zip(images, targets)):
            src_image, src_target = images[i - 1], targets[i - 1]
            n = len(src_target["labels"])
            if n == 0 or rng.random() >= self.p or len(images) < 2:
                out_images.append(image)
                out_targets.append(target)
                continue
            chosen = np.flatnonzero(rng.random(n) < 0.5)
            if not len(chosen):
                chosen = np.array([int(rng.integers(n))])
            new_image, new_target = copy_paste(image, target, src_image, src_target, chosen)
            out_images.append(new_image)
            out_targets.append(new_target)
        return out_images, out_targets

    def __repr__(self) -> str:
        return f"SimpleCopyPaste(p={self.p})"


