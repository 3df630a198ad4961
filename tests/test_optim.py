"""tinyvision.optim (Optimizer, SGD, Adam, AdamW) and tinyvision.nn.utils.clip_grad_norm_,
against torch.optim / torch.nn.utils on the same model, inputs and initial weights.

The model is a tiny MLP, loss = mean((tanh(x W1 + b1) W2 + b2 - y)^2); each library takes its
own gradients at every step, so the whole loop (gradient, update, next gradient) is compared.
Tolerances are tests/helpers.py's: float64 1e-10 relative (same arithmetic, only rounding
order differs), float32 1e-5 relative / 1e-6 absolute.
"""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tests.conftest import requires_gpu
from tests.helpers import DTYPES, tol
from tinyvision import optim
from tinyvision.kernels.compat import to_numpy
from tinyvision.nn.utils import clip_grad_norm_

STEPS = 20


def _weights(dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (4, 2), (2,)]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _data(dtype):
    rng = np.random.default_rng(1)
    return rng.standard_normal((8, 3)).astype(dtype), rng.standard_normal((8, 2)).astype(dtype)


def _loss(lib, params, x, y):
    w1, b1, w2, b2 = params
    return ((lib.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean()


def _groups(params, groups):
    """The parameters, or parameter groups: ``groups`` lists (indices, options) pairs."""
    return params if groups is None else [{"params": [params[i] for i in idx], **opts} for idx, opts in groups]


def _make(dtype, name, kwargs, groups=None):
    """The same model in both libraries, and an optimizer of each kind over it."""
    arrays = _weights(dtype)
    ours = [tv.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return (ours, getattr(optim, name)(_groups(ours, groups), **kwargs),
            theirs, getattr(torch.optim, name)(_groups(theirs, groups), **kwargs))


def _train(lib, params, opt, x, y, steps):
    """Run ``steps`` steps; return the parameter values after each one. With maximize=True
    the objective is -loss, so that the run still settles instead of diverging (a diverging
    run would amplify the last-bit differences of the two autograds)."""
    sign = -1.0 if opt.param_groups[0].get("maximize") else 1.0
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        (sign * _loss(lib, params, x, y)).backward()
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def _compare(ours_traj, theirs_traj, dtype):
    for step, (a, b) in enumerate(zip(ours_traj, theirs_traj)):
        for i, (pa, pb) in enumerate(zip(a, b)):
            np.testing.assert_allclose(pa, pb, **tol(dtype), err_msg=f"step {step + 1}, param {i}")


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.02, weight_decay=0.05, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.5, amsgrad=True)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), maximize=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_trajectory_matches_torch(name, kwargs, dtype):
    ours, opt, theirs, topt = _make(dtype, name, kwargs)
    x, y = _data(dtype)
    a = _train(tv, ours, opt, tv.tensor(x), tv.tensor(y), STEPS)
    b = _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), STEPS)
    _compare(a, b, dtype)
    assert not np.allclose(a[-1][0], _weights(dtype)[0]), "the parameters did not move"


GROUPS = {
    "SGD": [((0, 1), dict(lr=0.2)), ((2, 3), dict(lr=0.02, momentum=0.5, nesterov=False))],
    "Adam": [((0, 1), dict(lr=0.1, amsgrad=True)), ((2, 3), dict(lr=0.01, betas=(0.7, 0.95)))],
    "AdamW": [((0, 2), dict(lr=0.1)), ((1, 3), dict(lr=0.01, weight_decay=0.0))],
}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_param_groups_match_torch(name):
    defaults = dict(lr=0.05, momentum=0.9, nesterov=True) if name == "SGD" else dict(lr=0.05)
    ours, opt, theirs, topt = _make(np.float64, name, defaults, GROUPS[name])
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    x, y = _data(np.float64)
    _compare(_train(tv, ours, opt, tv.tensor(x), tv.tensor(y), STEPS),
             _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), STEPS), np.float64)


def test_add_param_group_matches_torch():
    """A group added part-way (e.g. unfreezing a layer) takes the defaults it does not give."""
    ours, opt, theirs, topt = _make(np.float64, "SGD", dict(lr=0.1, momentum=0.9), [((0, 1), {})])
    x, y = _data(np.float64)
    a = _train(tv, ours, opt, tv.tensor(x), tv.tensor(y), 5)
    b = _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), 5)
    opt.add_param_group({"params": ours[2:], "lr": 0.3})
    topt.add_param_group({"params": theirs[2:], "lr": 0.3})
    assert opt.param_groups[1]["momentum"] == 0.9
    a += _train(tv, ours, opt, tv.tensor(x), tv.tensor(y), 5)
    b += _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), 5)
    _compare(a, b, np.float64)


STATEFUL = [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
            ("Adam", dict(lr=0.05, amsgrad=True)),
            ("AdamW", dict(lr=0.05, weight_decay=0.1))]


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_round_trip_continues_identically(name, kwargs):
    """Save mid-run, restore into a fresh optimizer over copies of the parameters: both then
    take bit-identical steps, and both stay on torch's trajectory."""
    ours, opt, theirs, topt = _make(np.float64, name, kwargs)
    x, y = _data(np.float64)
    xs, ys = tv.tensor(x), tv.tensor(y)
    _train(tv, ours, opt, xs, ys, 10)
    _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), 10)
    saved = opt.state_dict()
    assert set(saved["state"]) == {0, 1, 2, 3}
    assert saved["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert all(isinstance(v, np.ndarray) for s in saved["state"].values() for v in s.values() if not isinstance(v, int))

    copies = [tv.tensor(p.detach().numpy().copy(), requires_grad=True) for p in ours]
    restored = getattr(optim, name)(copies, lr=123.0)  # options too come from the checkpoint
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["lr"] == kwargs["lr"]

    a = _train(tv, ours, opt, xs, ys, 10)
    for key, value in saved["state"][0].items():  # the checkpoint is a copy: later steps
        if isinstance(value, np.ndarray):          # must not have written into it
            assert not np.array_equal(value, to_numpy(opt.state[ours[0]][key])), key
    b = _train(tv, copies, restored, xs, ys, 10)
    for sa, sb in zip(a, b):
        for pa, pb in zip(sa, sb):
            np.testing.assert_array_equal(pa, pb)
    _compare(a, _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), 10), np.float64)


def _torch_state_to_numpy(sd):
    """torch's optimizer state_dict with tensors as NumPy arrays (0-d 'step' as an int)."""
    state = {i: {k: (int(v.item()) if k == "step" else v.numpy().copy()) for k, v in s.items()}
             for i, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_state_dict_layout_is_torchs(name, kwargs):
    """A torch checkpoint loads into tinyvision and training continues on torch's path, and
    the other way round: the two layouts are the same."""
    ours, opt, theirs, topt = _make(np.float64, name, kwargs)
    x, y = _data(np.float64)
    xs, ys, xt, yt = tv.tensor(x), tv.tensor(y), torch.tensor(x), torch.tensor(y)
    _train(torch, theirs, topt, xt, yt, 10)
    for p, q in zip(ours, theirs):  # our model takes torch's weights and optimizer state
        p.data[...] = q.detach().numpy()
    opt.load_state_dict(_torch_state_to_numpy(topt.state_dict()))
    _compare(_train(tv, ours, opt, xs, ys, 5), _train(torch, theirs, topt, xt, yt, 5), np.float64)

    ours_sd = opt.state_dict()  # and back: torch continues from our checkpoint
    state = {i: {k: (v if k == "step" else torch.tensor(v)) for k, v in s.items()} for i, s in ours_sd["state"].items()}
    topt2 = getattr(torch.optim, name)(theirs, **kwargs)
    topt2.load_state_dict({"state": state, "param_groups": ours_sd["param_groups"]})
    _compare(_train(tv, ours, opt, xs, ys, 5), _train(torch, theirs, topt2, xt, yt, 5), np.float64)


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name,kwargs", STATEFUL, ids=[n for n, _ in STATEFUL])
def test_cuda_matches_torch(name, kwargs):
    """The same rules on CuPy arrays follow torch's (CPU) trajectory; the checkpoint holds
    NumPy arrays and loading it puts the state back on the GPU."""
    x, y = _data(np.float64)
    ours = [tv.tensor(a, device="cuda", requires_grad=True) for a in _weights(np.float64)]
    theirs = [torch.tensor(a, requires_grad=True) for a in _weights(np.float64)]
    opt, topt = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    xs, ys = tv.tensor(x, device="cuda"), tv.tensor(y, device="cuda")
    a = _train(tv, ours, opt, xs, ys, 10)
    saved = opt.state_dict()
    assert all(type(v) is np.ndarray for s in saved["state"].values() for v in s.values() if not isinstance(v, int))
    opt.load_state_dict(saved)
    assert all(v.__class__.__module__.startswith("cupy") for s in opt.state.values() for v in s.values()
               if not isinstance(v, int))
    a += _train(tv, ours, opt, xs, ys, 10)
    _compare(a, _train(torch, theirs, topt, torch.tensor(x), torch.tensor(y), 20), np.float64)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    p = tv.tensor(np.ones(3), requires_grad=True)
    (p * 2.0).sum().backward()
    opt = optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert p.grad is None
    else:
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3))
    opt.step()  # a parameter without a gradient is left alone
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(3))


def test_step_closure_returns_loss():
    p = tv.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tv.no_grad():  # the closure re-enables grad, as torch's step does
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_array_equal(p.detach().numpy(), [0.5, -1.0])  # p - 0.25 * 2p


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-0.1), r"lr must be >= 0, got -0\.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), r"momentum must be >= 0, got -0\.5"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1.0), r"weight_decay must be >= 0, got -1\.0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0 .* momentum=0"),
    (lambda p: optim.SGD([{"params": p, "lr": -2.0}], lr=0.1), r"lr must be >= 0, got -2\.0"),
    (lambda p: optim.Adam(p, lr=-1e-3), r"lr must be >= 0, got -0\.001"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\), got 1\.0"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), r"betas\[1\] must be in \[0, 1\), got -0\.1"),
    (lambda p: optim.Adam(p, eps=-1e-8), r"eps must be >= 0, got -1e-08"),
    (lambda p: optim.Adam(p, betas=(0.9,)), r"betas must be a pair"),
])
def test_bad_options_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make([tv.tensor(np.zeros(2), requires_grad=True)])


def test_bad_params_are_refused():
    w = tv.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[1\] \(shape \(4,\), dtype float64\) does not require grad"):
        optim.Adam([w, tv.tensor(np.zeros(4))])
    with pytest.raises(TypeError, match=r"single Tensor of shape \(2, 3\)"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="more than one place"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([w * 2.0], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors, got ndarray"):
        optim.SGD([np.zeros(2)], lr=0.1)
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="2 parameter groups, the optimizer has 1"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": [0]}, {"params": [1]}]})


# ----------------------------------------------------------------- clip_grad_norm_
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clips / leaves alone
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (5,), (2, 2, 2)]]
    ours = [tv.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = tv.tensor(g.copy()), torch.tensor(g)
    no_grad = tv.tensor(np.zeros(2, dtype=dtype), requires_grad=True)  # skipped, as in torch
    total = clip_grad_norm_(ours + [no_grad], max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(total.numpy(), expected.numpy(), **tol(dtype))
    for i, (p, q) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **tol(dtype), err_msg=f"grad {i}")
    assert no_grad.grad is None


def test_clip_grad_norm_bad_input():
    p = tv.tensor(np.ones(2), requires_grad=True)
    p.grad = tv.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        clip_grad_norm_(p, 1.0, norm_type=-1)


@requires_gpu
@pytest.mark.gpu
def test_clip_grad_norm_cuda_matches_torch():
    g = np.random.default_rng(3).standard_normal((4, 5))
    p = tv.tensor(np.zeros_like(g), device="cuda", requires_grad=True)
    q = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
    p.grad, q.grad = tv.tensor(g, device="cuda"), torch.tensor(g)
    total = clip_grad_norm_([p], 1.0)
    assert total.device == "cuda"
    np.testing.assert_allclose(total.numpy(), torch.nn.utils.clip_grad_norm_([q], 1.0).numpy(), **tol(np.float64))
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), **tol(np.float64))
