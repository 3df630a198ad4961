"""Soft Dice, multi-class focal and Dice + CE (+ focal) against the formulas computed in torch
on the same logits (float64 and float32, loss and gradient), and float64 gradcheck."""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision.functional.segmentation import dice_ce_loss, dice_loss, focal_loss


def _case(dtype, ignore=None, seed=0, c=4):
    rng = np.random.default_rng(seed)
    x = (2 * rng.standard_normal((2, c, 5, 6))).astype(dtype)
    y = rng.integers(0, c, (2, 5, 6))
    y[y == c - 1] = rng.integers(0, c - 1, (y == c - 1).sum())   # class c-1 absent from the target
    if ignore is not None:
        y[0, :2] = ignore
    return x, y


def torch_dice(x, y, smooth, ignore, weight=None):
    c = x.shape[1]
    keep = torch.ones_like(y, dtype=x.dtype) if ignore is None else (y != ignore).to(x.dtype)
    yy = torch.where(y == (ignore if ignore is not None else -1), 0, y)
    p = torch.softmax(x, 1) * keep[:, None]
    onehot = torch.nn.functional.one_hot(yy, c).movedim(-1, 1).to(x.dtype) * keep[:, None]
    dims = (0, 2, 3)
    dice = (2 * (p * onehot).sum(dims) + smooth) / (p.sum(dims) + onehot.sum(dims) + smooth)
    if weight is None:
        return 1 - dice.mean()
    w = torch.tensor(weight, dtype=x.dtype)
    return 1 - (dice * w / w.sum()).sum()


def torch_focal(x, y, gamma, alpha, ignore):
    keep = y != ignore
    yy = torch.where(keep, y, 0)
    logp_t = torch.log_softmax(x, 1).gather(1, yy[:, None])[:, 0]
    loss = -(1 - logp_t.exp()) ** gamma * logp_t
    if alpha is not None:
        loss = loss * torch.tensor(alpha, dtype=x.dtype)[yy]
    return (loss * keep).sum() / keep.sum()


def _compare(ours_fn, ref_fn, x, dtype):
    xt = tv.tensor(x, requires_grad=True)
    loss = ours_fn(xt)
    loss.backward()
    xr = torch.tensor(x, requires_grad=True)
    ref = ref_fn(xr)
    ref.backward()
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=tol)
    g = xr.grad.numpy()
    np.testing.assert_allclose(xt.grad.numpy(), g, rtol=0, atol=tol * np.abs(g).max())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("smooth, ignore, weight", [(1.0, None, None), (0.0, 255, None), (0.5, 1, [1, 2, 3, 4])])
def test_dice_matches_torch(dtype, smooth, ignore, weight):
    x, y = _case(dtype, ignore)
    _compare(lambda t: dice_loss(t, tv.tensor(y), smooth=smooth, ignore_index=ignore, weight=weight),
             lambda t: torch_dice(t, torch.tensor(y), smooth, ignore, weight), x, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gamma, alpha, ignore", [(2.0, None, -100), (0.5, [0.25, 1.0, 2.0, 0.5], 255), (0.0, None, 255)])
def test_focal_matches_torch(dtype, gamma, alpha, ignore):
    x, y = _case(dtype, None if ignore == -100 else ignore, seed=1)
    _compare(lambda t: focal_loss(t, tv.tensor(y), gamma=gamma, alpha=alpha, ignore_index=ignore),
             lambda t: torch_focal(t, torch.tensor(y), gamma, alpha, ignore), x, dtype)


def test_focal_gamma_0_is_cross_entropy_and_reductions():
    x, y = _case("float64", 255, seed=2)
    ce = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=255).item()
    assert focal_loss(tv.tensor(x), tv.tensor(y), gamma=0.0, ignore_index=255).item() == pytest.approx(ce, rel=1e-12)
    per_pixel = focal_loss(tv.tensor(x), tv.tensor(y), ignore_index=255, reduction="none")
    assert per_pixel.shape == (2, 5, 6) and (per_pixel.numpy()[0, :2] == 0).all()
    assert focal_loss(tv.tensor(x), tv.tensor(y), ignore_index=255, reduction="sum").item() == pytest.approx(
        per_pixel.numpy().sum())


def test_dice_ce_is_the_weighted_sum():
    x, y = _case("float64", 255, seed=3)
    xt, yt = tv.tensor(x), tv.tensor(y)
    ce = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=255).item()
    dice = torch_dice(torch.tensor(x), torch.tensor(y), 1.0, 255).item()
    focal = torch_focal(torch.tensor(x), torch.tensor(y), 2.0, None, 255).item()
    total = dice_ce_loss(xt, yt, ignore_index=255, lambda_ce=0.5, lambda_dice=2.0, lambda_focal=3.0).item()
    assert total == pytest.approx(0.5 * ce + 2.0 * dice + 3.0 * focal, rel=1e-12)


def test_dice_perfect_prediction_is_near_zero_and_absent_class_counts_one():
    y = np.array([[[0, 1], [1, 0]]])
    x = 50.0 * (np.arange(3)[None, :, None, None] == y[:, None]).astype(np.float64)   # class 2 absent
    assert dice_loss(tv.tensor(x), tv.tensor(y), smooth=1.0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("fn", [
    lambda t, y: dice_loss(t, y, smooth=0.5, ignore_index=255),
    lambda t, y: focal_loss(t, y, gamma=1.5, alpha=[0.5, 1, 2, 1], ignore_index=255),
    lambda t, y: dice_ce_loss(t, y, ignore_index=255, lambda_focal=1.0)], ids=["dice", "focal", "dice_ce_focal"])
def test_gradcheck(fn):
    x, y = _case("float64", 255, seed=4)
    y = y[:1, :3, :4].copy()
    y[0, 0, :2] = 255
    tv.gradcheck(lambda t: fn(t, tv.tensor(y)), [tv.tensor(x[:1, :, :3, :4].copy(), requires_grad=True)])


def test_bad_input():
    x, y = _case("float64")
    with pytest.raises(ValueError, match=r"target holds classes \[7\] outside \[0, 4\)"):
        dice_loss(tv.tensor(x), tv.tensor(np.where(y == 0, 7, y)))
    with pytest.raises(ValueError, match="does not fit input"):
        focal_loss(tv.tensor(x), tv.tensor(y[:, :4]))
    with pytest.raises(ValueError, match="alpha of shape"):
        focal_loss(tv.tensor(x), tv.tensor(y), alpha=[1, 2])
