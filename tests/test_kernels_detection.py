"""The detection kernel ladders (nms, roi_align, roi_pool): every rung against the reference,
the reference (and the Numba rung) against torchvision's nms on thousands of box sets with ties,
the Numba kernels under NUMBA_BOUNDSCHECK=1 on edge-case RoIs, and the GPU rung (skipped without
CuPy and a CUDA device). roi_align/roi_pool against torchvision: tests/test_ops.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import ops
from tinyvision.kernels.cpu import nms as cpu_nms, roi_align as cpu_align, roi_pool as cpu_pool
from tinyvision.kernels.gpu import nms as gpu_nms, roi_align as gpu_align, roi_pool as gpu_pool
from tinyvision.kernels.reference import nms as ref_nms, roi_align as ref_align, roi_pool as ref_pool
from tests.conftest import requires_gpu
from tests.helpers import DTYPES, tol

NMS = np.load(Path(__file__).parent / "fixtures" / "ops" / "nms.npz")


def nms_sets():
    """(boxes, scores, threshold, keep32, keep64) for each stored set (see make_ops_fixtures.py)."""
    b, s = NMS["boxes2"].astype(np.float64) / 2, NMS["scores4"].astype(np.float64) / 4
    starts = np.concatenate([[0], np.cumsum(NMS["counts"].astype(np.int64))])
    k32 = np.split(NMS["keep32"].astype(np.int64), np.cumsum(NMS["nkeep32"].astype(np.int64))[:-1])
    k64 = np.split(NMS["keep64"].astype(np.int64), np.cumsum(NMS["nkeep64"].astype(np.int64))[:-1])
    for i, thr in enumerate(NMS["thresholds"]):
        lo, hi = starts[i], starts[i + 1]
        yield b[lo:hi].reshape(-1, 4), s[lo:hi], float(thr), k32[i], k64[i]


def _nms_matches_torchvision(rung, sets: int) -> None:
    n = 0
    for boxes, scores, thr, keep32, keep64 in list(nms_sets())[:sets]:
        for dtype, keep in ((np.float32, keep32), (np.float64, keep64)):
            got = rung.nms(boxes.astype(dtype), scores.astype(dtype), thr)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, keep, err_msg=f"set {n}, {dtype.__name__}, threshold {thr}")
        n += 1
    assert n == sets


# the reference loops in Python (~1 ms a set): 1,000 sets here, all 3,000 in the slow run
@pytest.mark.parametrize("rung,sets", [(ref_nms, 1000), (cpu_nms, 3000)], ids=["reference", "cpu"])
def test_nms_keeps_torchvisions_indices_on_box_sets_with_ties(rung, sets):
    _nms_matches_torchvision(rung, sets)


@pytest.mark.slow
def test_reference_nms_keeps_torchvisions_indices_on_all_3000_sets():
    _nms_matches_torchvision(ref_nms, 3000)


def test_nms_and_batched_nms_on_continuous_boxes():
    for i in range(3):
        b, s = NMS[f"cont{i}/boxes"], NMS[f"cont{i}/scores"]
        np.testing.assert_array_equal(ops.nms(tv.tensor(b), tv.tensor(s), 0.5).numpy(), NMS[f"cont{i}/keep"])
        np.testing.assert_array_equal(ref_nms.nms(b, s, 0.5), NMS[f"cont{i}/keep"])
    for i in range(2):
        b, s, idx = (NMS[f"batched{i}/{k}"] for k in ("boxes", "scores", "idxs"))
        got = ops.batched_nms(tv.tensor(b), tv.tensor(s), tv.tensor(idx), 0.4).numpy()
        np.testing.assert_array_equal(got, NMS[f"batched{i}/keep"])


def roi_case(seed: int, dtype, n_rois: int = 7):
    """A feature map, RoIs of every kind (off the map, tiny, huge, zero width) and an output gradient."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    xy = rng.uniform(-8, 28, (n_rois, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 20, (n_rois, 2))], axis=1)
    boxes[0] = [3, 3, 3, 8]
    rois = np.concatenate([rng.integers(0, 2, (n_rois, 1)), boxes], axis=1).astype(dtype)
    return x, rois, rng


ALIGN_ARGS = [(0.5, (3, 4), -1, False), (0.5, (2, 2), 2, True), (1.0, (5, 3), 0, True), (0.25, (1, 1), 3, False)]


def _rung_equals_reference_align(rung, to_device, to_host):
    for dtype in DTYPES:
        for seed, (scale, size, ratio, aligned) in enumerate(ALIGN_ARGS):
            x, rois, rng = roi_case(seed, dtype)
            g = rng.standard_normal((len(rois), 3) + size).astype(dtype)
            want = ref_align.roi_align_forward(x, rois, scale, size, ratio, aligned)
            got = rung.roi_align_forward(to_device(x), to_device(rois), scale, size, ratio, aligned)
            np.testing.assert_allclose(to_host(got), want, **tol(dtype, 10))
            want = ref_align.roi_align_backward(g, rois, x.shape, scale, size, ratio, aligned)
            got = rung.roi_align_backward(to_device(g), to_device(rois), x.shape, scale, size, ratio, aligned)
            np.testing.assert_allclose(to_host(got), want, **tol(dtype, 10))


def _rung_equals_reference_pool(rung, to_device, to_host):
    for dtype in DTYPES:
        for seed, (scale, size, _, _) in enumerate(ALIGN_ARGS):
            x, rois, rng = roi_case(seed, dtype)
            g = rng.standard_normal((len(rois), 3) + size).astype(dtype)
            want, want_idx = ref_pool.roi_pool_forward(x, rois, scale, size)
            got, got_idx = rung.roi_pool_forward(to_device(x), to_device(rois), scale, size)
            np.testing.assert_array_equal(to_host(got), want)
            np.testing.assert_array_equal(to_host(got_idx), want_idx)
            want = ref_pool.roi_pool_backward(g, want_idx, rois, x.shape)
            got = rung.roi_pool_backward(to_device(g), got_idx, to_device(rois), x.shape)
            np.testing.assert_allclose(to_host(got), want, **tol(dtype))


def test_cpu_rungs_equal_reference():
    same = lambda a: a
    _rung_equals_reference_align(cpu_align, same, same)
    _rung_equals_reference_pool(cpu_pool, same, same)
    rng = np.random.default_rng(0)
    for n in (0, 1, 200):
        xy = rng.uniform(0, 50, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (n, 2))], axis=1)
        scores = np.round(rng.random(n) * 5)
        np.testing.assert_array_equal(cpu_nms.nms(boxes, scores, 0.3), ref_nms.nms(boxes, scores, 0.3))


@pytest.mark.gpu
@requires_gpu
def test_gpu_rungs_equal_reference():
    import cupy

    _rung_equals_reference_align(gpu_align, cupy.asarray, cupy.asnumpy)
    _rung_equals_reference_pool(gpu_pool, cupy.asarray, cupy.asnumpy)
    for boxes, scores, thr, keep32, keep64 in list(nms_sets())[:300]:
        for dtype, keep in ((np.float32, keep32), (np.float64, keep64)):
            got = gpu_nms.nms(cupy.asarray(boxes.astype(dtype)), cupy.asarray(scores.astype(dtype)), thr)
            np.testing.assert_array_equal(cupy.asnumpy(got), keep)


BOUNDSCHECK_SCRIPT = textwrap.dedent("""
    import numpy as np
    import tinyvision as tv
    from tinyvision import ops

    rng = np.random.default_rng(0)
    x = tv.tensor(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    rois = tv.tensor([[0, -30, -30, -20, -20], [1, 40, 40, 90, 90], [1, -100, -100, 100, 100],
                      [0, 5.9, 4.9, 6.0, 5.0], [1, 0, 0, 0, 0], [0, 4.99, 0, 5.01, 5.0]])
    for scale in (1.0, 0.5, 2.0):
        for aligned in (False, True):
            for ratio in (-1, 0, 1, 3):
                ops.roi_align(x, rois, (3, 2), scale, ratio, aligned).sum().backward()
        ops.roi_pool(x, rois, (3, 2), scale).sum().backward()
    b = tv.tensor(rng.uniform(0, 5, (50, 4)).cumsum(axis=1))
    ops.nms(b, tv.tensor(rng.random(50)), 0.5)
    print("ok")
""")


@pytest.mark.slow  # ~15-25 s: every kernel recompiles with bounds checks
def test_numba_kernels_stay_in_bounds(tmp_path):
    """Edge-case RoIs (off the map, on the last pixel, empty, huge) with every Numba index
    checked; the omp layer, since workqueue drops an exception raised inside prange."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path), NUMBA_THREADING_LAYER="omp")
    result = subprocess.run([sys.executable, "-c", BOUNDSCHECK_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
