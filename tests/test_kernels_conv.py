"""The conv kernel ladder: every rung against the reference, the reference's seven loops
against torch, the Numba kernels under NUMBA_BOUNDSCHECK=1, and the GPU rung (skipped
without CuPy and a CUDA device).

Tolerance: as in test_conv.py, 10x the per-dtype elementwise tolerance, because every output
is a sum of up to a few hundred products computed in a different order on each rung.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings

from tinyvision.kernels import compat
from tinyvision.kernels.cpu import conv as cpu
from tinyvision.kernels.gpu import conv as gpu
from tinyvision.kernels.reference import conv as ref
from tests.conftest import requires_gpu
from tests.boundscheck import run_under_boundscheck
from tests.helpers import DTYPES, tol
from tests.test_conv import conv_cases

SUM_SCALE = 10


def _case_arrays(case: dict, dtype, seed: int = 0):
    """x, w and an output gradient for a conv_cases() case, with 'same' made explicit."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case["x"]).astype(dtype)
    w = rng.standard_normal(case["w"]).astype(dtype)
    padding = case["padding"]
    if padding == "same":  # kernels take symmetric padding; use 'valid' for this comparison
        padding = (0, 0)
    args = (case["stride"], padding, case["dilation"], case["groups"])
    oh = ref.conv_output_size(x.shape[2], w.shape[2], args[0][0], padding[0], args[2][0])
    ow = ref.conv_output_size(x.shape[3], w.shape[3], args[0][1], padding[1], args[2][1])
    grad = rng.standard_normal((x.shape[0], w.shape[0], oh, ow)).astype(dtype)
    return x, w, grad, args


def _check_rung(rung, to_device, dtype, case):
    x, w, grad, args = _case_arrays(case, dtype)
    stride, padding, dilation, groups = args
    kernel_size = w.shape[2:]
    cols = ref.im2col(x, kernel_size, stride, padding, dilation)
    expected = {
        "conv2d_forward": (ref.conv2d_forward(x, w, *args),
                           lambda: rung.conv2d_forward(to_device(x), to_device(w), *args)),
        "conv2d_backward_input": (ref.conv2d_backward_input(grad, w, x.shape, *args),
                                  lambda: rung.conv2d_backward_input(to_device(grad), to_device(w), x.shape, *args)),
        "conv2d_backward_weight": (ref.conv2d_backward_weight(grad, x, w.shape, *args),
                                   lambda: rung.conv2d_backward_weight(to_device(grad), to_device(x), w.shape, *args)),
        "im2col": (cols, lambda: rung.im2col(to_device(x), kernel_size, stride, padding, dilation)),
        "col2im": (ref.col2im(cols, x.shape, kernel_size, stride, padding, dilation),
                   lambda: rung.col2im(to_device(cols), x.shape, kernel_size, stride, padding, dilation)),
    }
    for name, (want, run) in expected.items():
        got = compat.to_numpy(run())
        assert got.dtype == dtype, name
        np.testing.assert_allclose(got, want, **tol(dtype, SUM_SCALE), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=conv_cases())
def test_cpu_rung_matches_reference(case, dtype):
    _check_rung(cpu, lambda a: a, dtype, case)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=conv_cases())
def test_gpu_rung_matches_reference(case, dtype):
    _check_rung(gpu, lambda a: compat.to_device(a, "cuda"), dtype, case)


@pytest.mark.parametrize("dtype", DTYPES)
def test_seven_loops_match_torch(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 6, 5)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
    got = ref.conv2d_forward_loops(x, w, (2, 1), (1, 2), (1, 2), 2)
    want = TF.conv2d(torch.tensor(x), torch.tensor(w), None, (2, 1), (1, 2), (1, 2), 2).numpy()
    np.testing.assert_allclose(got, want, **tol(dtype, SUM_SCALE))


def test_cpu_workspace_is_reused_but_never_returned():
    """Outputs must own their memory: a later call that reuses the columns buffer must not
    change an earlier result; a smaller layer after a bigger one must still be right."""
    rng = np.random.default_rng(2)
    big, small = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((1, 3, 4, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    args = ((1, 1), (1, 1), (1, 1), 1)
    first = cpu.conv2d_forward(big, w, *args)
    kept = first.copy()
    second = cpu.conv2d_forward(small, w, *args)
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(second, ref.conv2d_forward(small, w, *args), **tol(np.float64, SUM_SCALE))
    assert cpu.workspace_bytes() >= 2 * 9 * 9 * 27 * 8  # the big layer's columns, kept for reuse


BOUNDSCHECK_SCRIPT = textwrap.dedent("""
    import numpy as np
    import tinyvision as tv
    import tinyvision.nn.functional as F
    from tinyvision.kernels.cpu import conv as cpu

    # 1. bounds checking is really on: a deliberately wrong call must raise IndexError
    try:
        cpu._to_channels_last(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 1)))  # 2 channels into 1
    except (IndexError, SystemError):  # inside prange the IndexError surfaces as SystemError
        pass
    else:
        raise SystemExit("NUMBA_BOUNDSCHECK is not active")

    # 2. edge-case shapes through the public functions (which validate), forward and backward
    rng = np.random.default_rng(0)
    cases = [  # x, w, stride, padding, dilation, groups
        ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0, 1, 1),
        ((2, 3, 3, 4), (4, 3, 5, 5), 1, 2, 1, 1),
        ((2, 2, 9, 8), (3, 2, 2, 1), (4, 5), 0, 1, 1),
        ((1, 4, 7, 5), (8, 1, 3, 2), (2, 3), (3, 1), (2, 3), 4),
        ((1, 2, 2, 3), (2, 2, 2, 3), 1, 0, 1, 1),
        ((2, 6, 5, 5), (6, 2, 3, 3), 2, 4, 2, 3),
    ]
    for xs, ws, s, p, d, g in cases:
        x = tv.tensor(rng.standard_normal(xs), requires_grad=True)
        w = tv.tensor(rng.standard_normal(ws), requires_grad=True)
        y = F.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)
        F.conv2d(y, tv.tensor(rng.standard_normal((2, ws[0], 1, 1))), padding=1).sum().backward(retain_graph=True)
        c = F.unfold(x, ws[2:], dilation=d, padding=p, stride=s)
        F.fold(c, xs[2:], ws[2:], dilation=d, padding=p, stride=s).sum().backward()
        wt = tv.tensor(rng.standard_normal((ws[0], ws[1], *ws[2:])), requires_grad=True)
        F.conv_transpose2d(y, wt, stride=s, padding=0, groups=g, dilation=d).sum().backward()
""")


@pytest.mark.slow  # recompiles every kernel with bounds checks (tens of seconds): make test-slow
def test_numba_kernels_stay_in_bounds():
    """Run the Numba kernels compiled with bounds checks over edge-case shapes (the helper
    forces the omp threading layer and proves that a bad write inside prange is reported)."""
    run_under_boundscheck(BOUNDSCHECK_SCRIPT)
