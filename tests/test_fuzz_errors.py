"""Fuzzing the public ops with bad arguments: every failure must be a clear error.

Hypothesis (seeded, derandomised) draws a call of one of ~20 ops with arguments that are often
wrong: odd shapes (0-d, zero-size dims), integer/bool/float16 tensors, lists where a tensor
belongs, floats where an int belongs, negative sizes, NaN, None. A call may succeed (then its
backward runs too), or fail; a failure is *clear* when it is a TypeError, ValueError,
IndexError or RuntimeError whose message names the op. Anything else (an AttributeError,
ZeroDivisionError or NotImplementedError from inside NumPy or Numba, a message without the
op's name) is *unclear*, and the test lists each one.

    python -m tests.test_fuzz_errors 3000     # the rate over 3000 calls, with the worst cases
"""
from __future__ import annotations

import sys
import warnings
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F

CLEAR = (TypeError, ValueError, IndexError, RuntimeError)
DTYPES = [np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_]
JUNK = [None, [1, 2], "a", 2.5, -1, 0, True, float("nan"), ()]


@st.composite
def tensors(draw, min_dims=0, max_dims=4, good_dtype=0.7):
    """A tensor, usually float64 with small non-zero sides, sometimes anything."""
    ndim = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.lists(st.integers(0, 4) if draw(st.booleans()) and draw(st.booleans())
                                else st.integers(1, 4), min_size=ndim, max_size=ndim)))
    dtype = np.float64 if draw(st.floats(0, 1)) < good_dtype else draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    a = np.random.default_rng(seed).standard_normal(shape) * 3
    return tv.tensor(a.astype(dtype), requires_grad=np.dtype(dtype).kind == "f")


def arg(draw, good):
    """``good`` (a strategy) most of the time, else a junk value or a tensor."""
    r = draw(st.floats(0, 1))
    if r < 0.6:
        return draw(good)
    if r < 0.9:
        return draw(st.sampled_from(JUNK))
    return draw(tensors())


small = st.integers(-1, 4)
sizes = st.lists(st.integers(-1, 4), min_size=0, max_size=4).map(tuple)


def image(draw):
    return draw(tensors(3, 4)) if draw(st.floats(0, 1)) < 0.8 else draw(tensors())


# op name -> a function of Hypothesis's draw that makes the call
CALLS = {
    "conv2d": lambda d: F.conv2d(image(d), d(tensors(3, 5)), arg(d, st.none()), stride=arg(d, small),
                                 padding=arg(d, small)),
    "max_pool2d": lambda d: F.max_pool2d(image(d), arg(d, small), stride=arg(d, small), padding=arg(d, small)),
    "avg_pool2d": lambda d: F.avg_pool2d(image(d), arg(d, small), padding=arg(d, small)),
    "adaptive_avg_pool2d": lambda d: F.adaptive_avg_pool2d(image(d), arg(d, small)),
    "interpolate": lambda d: F.interpolate(image(d), size=arg(d, small), mode=d(st.sampled_from(
        ["nearest", "bilinear", "bicubic", "area", "linear", "trilinear", "cubic"]))),
    "pad": lambda d: F.pad(d(tensors()), arg(d, sizes), mode=d(st.sampled_from(
        ["constant", "reflect", "replicate", "circular", "wrap"])), value=arg(d, st.floats(-2, 2))),
    "reshape": lambda d: F.reshape(d(tensors()), arg(d, sizes)),
    "cat": lambda d: tv.cat(arg(d, st.lists(tensors(), min_size=0, max_size=3)), dim=arg(d, small)),
    "stack": lambda d: tv.stack(arg(d, st.lists(tensors(), min_size=0, max_size=3)), dim=arg(d, small)),
    "softmax": lambda d: F.softmax(d(tensors()), arg(d, small)),
    "log_softmax": lambda d: F.log_softmax(d(tensors()), arg(d, small)),
    "matmul": lambda d: F.matmul(d(tensors(0, 3)), arg(d, tensors(0, 3))),
    "linear": lambda d: F.linear(d(tensors(0, 3)), arg(d, tensors(0, 3)), arg(d, st.none())),
    "batch_norm": lambda d: F.batch_norm(d(tensors()), arg(d, tensors(0, 2)), arg(d, tensors(0, 2)),
                                         training=d(st.booleans()), eps=arg(d, st.floats(0, 1e-3))),
    "layer_norm": lambda d: F.layer_norm(d(tensors()), arg(d, sizes), eps=arg(d, st.floats(0, 1e-3))),
    "cross_entropy": lambda d: F.cross_entropy(d(tensors(0, 3)), d(tensors(0, 2, good_dtype=0.2))),
    "mse_loss": lambda d: F.mse_loss(d(tensors()), arg(d, tensors())),
    "unfold": lambda d: F.unfold(image(d), arg(d, small), padding=arg(d, small)),
    "embedding": lambda d: F.embedding(d(tensors(0, 2, good_dtype=0.2)), arg(d, tensors(0, 3))),
    "sum": lambda d: F.sum(d(tensors()), arg(d, small)),
    "mean": lambda d: F.mean(d(tensors()), arg(d, small)),
    "permute": lambda d: F.permute(d(tensors()), arg(d, sizes)),
    "flatten": lambda d: F.flatten(d(tensors()), arg(d, small), arg(d, small)),
    "index_select": lambda d: F.index_select(d(tensors()), arg(d, small), arg(d, tensors(0, 1, 0.0))),
    "scaled_dot_product_attention": lambda d: F.scaled_dot_product_attention(
        d(tensors(2, 4)), d(tensors(2, 4)), d(tensors(2, 4))),
}


def outcome(name: str, draw) -> tuple[str, str]:
    """('ok' | 'clear' | 'unclear', description) of one drawn call and its backward."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = CALLS[name](draw)
            if isinstance(out, tv.Tensor) and out.requires_grad and out.dtype.kind == "f":
                out.sum().backward()
        except CLEAR as e:
            if name in str(e):
                return "clear", f"{type(e).__name__}: {e}"
            return "unclear", f"{name}: {type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 (the point: nothing else may escape)
            return "unclear", f"{name}: {type(e).__name__}: {e}"
    return "ok", ""


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_every_failure_is_clear(data):
    name = data.draw(st.sampled_from(sorted(CALLS)))
    kind, what = outcome(name, data.draw)
    assert kind != "unclear", what


def measure(n: int) -> None:
    """Draw n calls (seeded) and print the counts and the unclear ones."""
    counts: Counter = Counter()
    unclear: list[str] = []

    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(CALLS)))
        kind, what = outcome(name, data.draw)
        counts[kind] += 1
        if kind == "unclear":
            unclear.append(what[:200])

    run()
    total = sum(counts.values())
    print(f"{total} calls of {len(CALLS)} ops: {counts['ok']} ran, {counts['clear']} clear errors, "
          f"{counts['unclear']} unclear ({100 * counts['unclear'] / max(total, 1):.2f} %)")
    for line, k in Counter(unclear).most_common(20):
        print(f"  {k} x {line}")


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
