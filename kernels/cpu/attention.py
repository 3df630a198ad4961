"""Scaled dot-product attention on the CPU: three algorithms behind one ladder API.

Same functions and signatures as ``reference/attention.py``. ``attention_forward`` picks one
per call (``algorithm`` below, a table of measurements; docs/attention.md, "Three algorithms"):

* **batched** (any mask, dropout): the matmuls (q k^T, P v and the four in the backward) are
  ``np.matmul``, OpenBLAS per head, each GEMM split over BLAS's threads; Numba fuses the
  softmax: the reference makes about six full passes over the (..., L, S) scores (max,
  subtract, exp, sum, divide, plus the -inf handling); the fused kernel reads each row while
  it is in L1, once for the max and once for exp-and-sum, then scales it. Its backward fuses
  dS = P * (dP - sum(dP * P)) the same way, in place. Causal masking costs nothing: row i
  only visits keys j <= i and zero-fills the rest.
* **heads** (no mask, no dropout, short sequences: the ViT case): one Numba ``prange`` over
  the batch x heads; each thread runs its head's GEMMs on one BLAS thread and its softmax
  while the scores are in its cache. A head's GEMMs are small (197 x 64 x 197 in ViT-Ti), so
  splitting each over threads paid a fork-join per GEMM; here nothing is split and the only
  synchronisation is the end of the loop.
* **flash** (no mask, no dropout, long sequences): FlashAttention's tiling (Dao et al. 2022)
  with the online softmax (Milakov & Gimelshein 2018): each thread takes a block of queries
  and streams the keys through in blocks, keeping a running row max m, row sum l and output
  accumulator, rescaled by e^(m_old - m_new) when the max grows. The L x S matrix never
  exists: memory is O(L) per head (the log-sum-exp of each row, saved for the backward),
  and the backward recomputes each tile's probabilities from it.

Without Intel's SVML library, Numba turns ``np.exp`` into one libm call per element, which
does not vectorise: 3.7 M of them were the largest cost of the softmax. For float32 the kernels
use the vectorisable exp of ``cpu/fastmath.py`` (~5x faster measured on 3.7 M values);
float64 keeps ``np.exp``.

``np.dot`` inside a Numba kernel calls the BLAS that SciPy links (Numba has no other), a
library separate from NumPy's OpenBLAS. The heads and flash kernels run it from every prange
thread at once, each on its own head or tile, so that library is held to one thread while they
run (``cpu/blas.py``): the cores are Numba's, and no second pool wakes up.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.cpu.blas import one_blas_thread
from tinyvision.kernels.cpu.fastmath import exp_nonpositive as _exp
from tinyvision.kernels.dispatch import ALGORITHMS, forced_algorithm

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["attention_forward", "attention_backward"]


# --------------------------------------------------------------------------- fused softmax

@njit(inline="always")
def _softmax_row(row, n, scale):
    """In place: row[:n] <- softmax(scale * row[:n]), row[n:] <- 0 (n >= 1 visible keys).
    A row with no finite score (every key masked by -inf) becomes all zeros."""
    m = row[0] * scale
    for j in range(1, n):
        m = max(m, row[j] * scale)
    if m == -np.inf:
        row[:] = 0
        return
    total = 0.0
    for j in range(n):
        e = _exp(row[j] * scale - m)  # exponent <= 0: no overflow
        row[j] = e
        total += e
    inv = 1.0 / total
    for j in range(n):
        row[j] *= inv
    row[n:] = 0


@njit(inline="always")
def _softmax_backward_row(p, dp):
    """In place: dp <- p * (dp - sum(dp * p)) (the softmax Jacobian-vector product)."""
    dot = 0.0
    for j in range(p.shape[0]):
        dot += dp[j] * p[j]
    for j in range(p.shape[0]):
        dp[j] = p[j] * (dp[j] - dot)


@njit(parallel=True, cache=True)
def _softmax_rows(s, scale, L, causal):
    """In place: each row r of s (R, S) becomes softmax(scale * row) over its visible keys:
    all S, or j <= r % L when causal (row r is query r % L)."""
    R, S = s.shape
    for r in prange(R):
        _softmax_row(s[r], min(S, r % L + 1) if causal else S, scale)


@njit(parallel=True, cache=True)
def _softmax_backward_rows(p, dp):
    """In place, row by row: dp <- p * (dp - sum(dp * p))."""
    for r in prange(p.shape[0]):
        _softmax_backward_row(p[r], dp[r])


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def _batched_forward(q, k, v, bias, scale, is_causal, dropout):
    """BLAS batched matmuls around the fused softmax (any bias, causal, dropout)."""
    scores = np.matmul(q, k.swapaxes(-1, -2))
    if bias is not None:  # the bias is added after scaling, so scale first and softmax with 1
        scores = np.ascontiguousarray(scores * scores.dtype.type(scale) + bias.astype(scores.dtype))
        scale = 1.0
    _softmax_rows(_rows(scores), scores.dtype.type(scale), q.shape[-2], is_causal)
    kept = scores if dropout is None else scores * dropout
    return np.matmul(kept, v), scores


def _batched_backward(grad, q, k, v, probs, scale, dropout):
    kept = probs if dropout is None else probs * dropout
    dv = np.matmul(kept.swapaxes(-1, -2), grad)
    dscores = np.matmul(grad, v.swapaxes(-1, -2))
    if dropout is not None:
        dscores *= dropout
    _softmax_backward_rows(_rows(probs), _rows(dscores))
    c = dscores.dtype.type(scale)
    dq = np.matmul(dscores, k)
    dq *= c
    dk = np.matmul(dscores.swapaxes(-1, -2), q)
    dk *= c
    return dq, dk, dv, dscores


# --------------------------------------------------------------------------- heads over threads
@njit(parallel=True, cache=True)
def _heads_forward(q, k, v, out, probs, scale, causal):
    """Per head b (in parallel): probs[b] = softmax(scale q[b] k[b]^T), out[b] = probs[b] v[b].
    q (B, L, E), k (B, S, E), v (B, S, Ev) contiguous; out (B, L, Ev), probs (B, L, S)."""
    n_heads, L, _ = q.shape
    S = k.shape[1]
    for b in prange(n_heads):
        p = probs[b]
        p[:] = np.dot(q[b], k[b].T)
        for i in range(L):
            _softmax_row(p[i], min(S, i + 1) if causal else S, scale)
        out[b] = np.dot(p, v[b])


@njit(parallel=True, cache=True)
def _heads_backward(grad, q, k, v, probs, dq, dk, dv, dscores, scale):
    """Per head b (in parallel): the backward of _heads_forward (reference.attention's formulas)."""
    for b in prange(q.shape[0]):
        p, ds = probs[b], dscores[b]
        dv[b] = np.dot(p.T, grad[b])
        ds[:] = np.dot(grad[b], v[b].T)
        for i in range(p.shape[0]):
            _softmax_backward_row(p[i], ds[i])
        dq[b] = np.dot(ds, k[b]) * scale
        dk[b] = np.dot(ds.T, q[b]) * scale


# --------------------------------------------------------------------------- flash (tiled)
@njit(inline="always")
def _visible(causal, i, j0, j1):
    """How many keys of the block [j0, j1) query i sees (causal: keys j <= i)."""
    return max(0, min(j1, i + 1) - j0) if causal else j1 - j0


@njit(parallel=True, cache=True)
def _flash_forward(q, k, v, out, lse, scale, causal, block_q, block_k):
    """out (B, L, Ev) and lse (B, L) = log sum_j exp(scale q_i . k_j), one query block per task.

    For each key block, with the block's scores s (rows, cols):
        m_new = max(m, max_j s_ij);  alpha = e^(m - m_new);  p_ij = e^(s_ij - m_new)
        l <- alpha l + sum_j p_ij;   acc <- alpha acc + p v_block;   m <- m_new
    and at the end out = acc / l, lse = m + log l.
    """
    n_heads, L, _ = q.shape
    S, Ev = k.shape[1], v.shape[2]
    n_blocks = (L + block_q - 1) // block_q
    for task in prange(n_heads * n_blocks):
        b, i0 = task // n_blocks, (task % n_blocks) * block_q
        i1 = min(L, i0 + block_q)
        rows = i1 - i0
        m = np.empty(rows, q.dtype)
        m[:] = -np.inf
        l = np.zeros(rows, q.dtype)
        acc = np.zeros((rows, Ev), q.dtype)
        key_end = min(S, i1) if causal else S
        for j0 in range(0, key_end, block_k):
            j1 = min(key_end, j0 + block_k)
            s = np.dot(q[b, i0:i1], k[b, j0:j1].T)
            for r in range(rows):
                row = s[r]
                n = _visible(causal, i0 + r, j0, j1)
                if n == 0:  # the whole block is in this query's future
                    row[:] = 0
                    continue
                m_new = m[r]
                for j in range(n):
                    m_new = max(m_new, row[j] * scale)
                alpha = _exp(m[r] - m_new)  # e^-inf = 0 on the first block
                total = 0.0
                for j in range(n):
                    e = _exp(row[j] * scale - m_new)
                    row[j] = e
                    total += e
                row[n:] = 0
                l[r] = alpha * l[r] + total
                m[r] = m_new
                for e in range(Ev):
                    acc[r, e] *= alpha
            acc += np.dot(s, v[b, j0:j1])
        for r in range(rows):
            inv = 1.0 / l[r]
            for e in range(Ev):
                out[b, i0 + r, e] = acc[r, e] * inv
            lse[b, i0 + r] = m[r] + np.log(l[r])


@njit(inline="always")
def _flash_tile(q, k, v, grad, lse, dsum, scale, causal, b, i0, i1, j0, j1):
    """Recompute one tile's probabilities p (rows, cols) from the saved log-sum-exp, and its
    score gradient ds = p * (g v^T - D) with D_i = sum(g_i * out_i). Returns (p, ds)."""
    p = np.dot(q[b, i0:i1], k[b, j0:j1].T)
    ds = np.dot(grad[b, i0:i1], v[b, j0:j1].T)
    for r in range(i1 - i0):
        n = _visible(causal, i0 + r, j0, j1)
        for j in range(n):
            p[r, j] = _exp(p[r, j] * scale - lse[b, i0 + r])
            ds[r, j] = p[r, j] * (ds[r, j] - dsum[b, i0 + r])
        p[r, n:] = 0
        ds[r, n:] = 0
    return p, ds


@njit(parallel=True, cache=True)
def _flash_backward_kv(q, k, v, grad, lse, dsum, dk, dv, scale, causal, block_q, block_k):
    """dk, dv, one key block per task (so no two tasks write the same rows):
    dv_j = sum_i p_ij g_i,  dk_j = scale sum_i ds_ij q_i."""
    n_heads, L, _ = q.shape
    S = k.shape[1]
    n_blocks = (S + block_k - 1) // block_k
    for task in prange(n_heads * n_blocks):
        b, j0 = task // n_blocks, (task % n_blocks) * block_k
        j1 = min(S, j0 + block_k)
        dk_acc = np.zeros((j1 - j0, q.shape[2]), q.dtype)
        dv_acc = np.zeros((j1 - j0, v.shape[2]), q.dtype)
        first = (j0 // block_q) * block_q if causal else 0  # earlier queries see none of these keys
        for i0 in range(first, L, block_q):
            i1 = min(L, i0 + block_q)
            p, ds = _flash_tile(q, k, v, grad, lse, dsum, scale, causal, b, i0, i1, j0, j1)
            dv_acc += np.dot(p.T, grad[b, i0:i1])
            dk_acc += np.dot(ds.T, q[b, i0:i1])
        dk[b, j0:j1] = dk_acc * scale
        dv[b, j0:j1] = dv_acc


@njit(parallel=True, cache=True)
def _flash_backward_q(q, k, v, grad, lse, dsum, dq, scale, causal, block_q, block_k):
    """dq, one query block per task: dq_i = scale sum_j ds_ij k_j (the tiles recomputed again)."""
    n_heads, L, _ = q.shape
    S = k.shape[1]
    n_blocks = (L + block_q - 1) // block_q
    for task in prange(n_heads * n_blocks):
        b, i0 = task // n_blocks, (task % n_blocks) * block_q
        i1 = min(L, i0 + block_q)
        dq_acc = np.zeros((i1 - i0, q.shape[2]), q.dtype)
        for j0 in range(0, min(S, i1) if causal else S, block_k):
            j1 = min(S, j0 + block_k)
            _, ds = _flash_tile(q, k, v, grad, lse, dsum, scale, causal, b, i0, i1, j0, j1)
            dq_acc += np.dot(ds, k[b, j0:j1])
        dq[b, i0:i1] = dq_acc * scale


# --------------------------------------------------------------------------- algorithm table
# Which algorithm runs (docs/attention.md, "Three algorithms", has the measurements):
#   - a bias (mask) or dropout: "batched", the only one that takes them;
#   - no mask, fewer than FLASH_MIN_SCORES scores per head: "heads" (ViT's 197 x 197);
#   - longer: "flash", whose memory stays O(L) where the others hold (B, H, L, S) scores.
# Measured (B1 H3 D64 fwd+bwd, 2 threads, interleaved): heads was 1.3x faster than flash at
# L = 1024 and 1.1x at 2048 (flash recomputes each tile twice in its backward), while its
# probabilities and their gradient take 2 x 4 L^2 bytes per head: 400 MiB for 3 heads at 4096.
ALGORITHMS = ALGORITHMS["attention"]
FLASH_MIN_SCORES = 2048 * 4096   # L * S per head from which flash runs (L = S ~ 2900)
BLOCK_Q, BLOCK_K = 64, 256       # flash tiles: 64 x 256 float32 scores = 64 KiB, in L2


class FlashState(NamedTuple):
    """What the flash forward keeps for its backward instead of the (..., L, S) probabilities."""

    out: np.ndarray   # (B, L, Ev), the forward's output
    lse: np.ndarray   # (B, L), log sum_j exp(scale q_i . k_j)
    causal: bool


def algorithm(L: int, S: int, bias, dropout) -> str:
    """The algorithm for an attention of L queries over S keys with this mask and dropout."""
    if bias is not None or dropout is not None:
        return "batched"
    forced = forced_algorithm("attention")  # kernels.dispatch.use_algorithm("attention", ...)
    if forced is not None:
        return forced
    return "flash" if L * S >= FLASH_MIN_SCORES else "heads"


def _heads(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Broadcast the batch dims of (..., n, d) arrays and flatten them: contiguous (B, n, d)."""
    batch = np.broadcast_shapes(*(a.shape[:-2] for a in arrays))
    return tuple(np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:])).reshape((-1,) + a.shape[-2:])
                 for a in arrays)


# --------------------------------------------------------------------------- the ladder API
def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | None, scale: float,
                      is_causal: bool, dropout: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """See reference.attention.attention_forward. With the flash algorithm the second result is
    a ``FlashState``, which only this rung's backward reads."""
    name = algorithm(q.shape[-2], k.shape[-2], bias, dropout)
    if name == "batched":
        return _batched_forward(q, k, v, bias, scale, is_causal, dropout)
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    qh, kh, vh = _heads(q, k, v)
    L, S = q.shape[-2], k.shape[-2]
    out = np.empty(qh.shape[:2] + vh.shape[2:], q.dtype)
    c = q.dtype.type(scale)
    with one_blas_thread():
        if name == "heads":
            probs = np.empty((qh.shape[0], L, S), q.dtype)
            _heads_forward(qh, kh, vh, out, probs, c, is_causal)
            return out.reshape(batch + out.shape[1:]), probs.reshape(batch + (L, S))
        lse = np.empty(qh.shape[:2], q.dtype)
        _flash_forward(qh, kh, vh, out, lse, c, is_causal, BLOCK_Q, BLOCK_K)
    return out.reshape(batch + out.shape[1:]), FlashState(out, lse, bool(is_causal))


def attention_backward(grad: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, probs,
                       scale: float, dropout: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """See reference.attention.attention_backward. After a flash forward (``probs`` is a
    FlashState) the tiles are recomputed, and dL/dscores, which exists only for a mask's
    gradient (flash runs without one), is None."""
    flash = isinstance(probs, FlashState)
    if not flash and (dropout is not None or algorithm(q.shape[-2], k.shape[-2], None, None) != "heads"):
        return _batched_backward(grad, q, k, v, probs, scale, dropout)
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    gh, qh, kh, vh = _heads(grad, q, k, v)
    dq, dk, dv = np.empty_like(qh), np.empty_like(kh), np.empty_like(vh)
    c = q.dtype.type(scale)
    with one_blas_thread():
        if flash:
            dsum = np.einsum("ble,ble->bl", gh, probs.out)  # D_i = g_i . out_i
            _flash_backward_kv(qh, kh, vh, gh, probs.lse, dsum, dk, dv, c, probs.causal, BLOCK_Q, BLOCK_K)
            _flash_backward_q(qh, kh, vh, gh, probs.lse, dsum, dq, c, probs.causal, BLOCK_Q, BLOCK_K)
            dscores = None
        else:
            p = np.ascontiguousarray(probs).reshape((-1,) + probs.shape[-2:])
            dscores = np.empty_like(p)
            _heads_backward(gh, qh, kh, vh, p, dq, dk, dv, dscores, c)
            dscores = dscores.reshape(batch + p.shape[1:])
    return tuple(a.reshape(batch + a.shape[1:]) for a in (dq, dk, dv)) + (dscores,)
