"""Differentiable ops, one Function class each (forward and backward side by side).

Also importable as ``tinyvision.nn.functional``, PyTorch's name for the same thing.
"""
from tinyvision.functional.conv import conv1d, conv2d, conv3d, conv_transpose2d, fold, unfold
from tinyvision.functional.elementwise import (
    abs, add, allclose, arctan2, atan2, cast, ceil, clamp, clip, clone, cos, div, eq, erf, exp,
    floor, ge, gt, isclose, isfinite, isinf, isnan, le, lerp, log, log1p,
    logical_and, logical_not, logical_or, lt, maximum, minimum, mul, ne, neg, pow, round,
    rsqrt, sigmoid, sign, sin, sqrt, square, sub, tanh, to_device, where)
from tinyvision.functional.activation import (elu, gelu, glu, hardsigmoid, hardswish, hardtanh,
                                              leaky_relu, logsigmoid, mish, prelu, relu, relu6,
                                              selu, silu, softplus, softsign)
from tinyvision.functional.dropout import dropout, dropout1d, dropout2d, dropout3d
from tinyvision.functional.indexing import (gather, getitem, index_add, index_put, index_select,
                                            masked_fill, masked_scatter, scatter, scatter_add,
                                            unwrap_index)
from tinyvision.functional.distance import cosine_similarity, pairwise_distance
from tinyvision.functional.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,
                                        cosine_embedding_loss, cross_entropy, huber_loss, kl_div,
                                        l1_loss, mse_loss, nll_loss, one_hot, smooth_l1_loss,
                                        triplet_margin_loss)
from tinyvision.functional.normalization import (batch_norm, embedding, group_norm, instance_norm,
                                                 layer_norm, local_response_norm, normalize)
from tinyvision.functional.pooling import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d,
                                           max_pool2d)
from tinyvision.functional.attention import scaled_dot_product_attention
from tinyvision.functional.resize import interpolate, pixel_shuffle, pixel_unshuffle
from tinyvision.functional.segmentation import dice_ce_loss, dice_loss, focal_loss
from tinyvision.functional.reduction import (all, amax, amin, any, argmax, argmin, log_softmax,
                                             logsumexp, max, mean, min, norm, prod, softmax, std,
                                             sum, var)
from tinyvision.functional.shape import (broadcast_to, cat, chunk, concatenate, expand, flatten,
                                         flip, meshgrid, movedim, narrow, numel, pad, permute,
                                         repeat, repeat_interleave, reshape, roll, split,
                                         squeeze, stack, swapaxes, t, tile, transpose, unbind,
                                         unflatten, unsqueeze, view, view_as)
from tinyvision.functional.sorting import (argsort, kthvalue, median, nonzero, searchsorted, sort,
                                           topk, unique)
from tinyvision.functional.sampling import affine_grid, grid_sample
from tinyvision.functional.scan import cumprod, cumsum, diff
from tinyvision.functional.linalg import (addmm, bmm, cdist, diag, einsum, ger, kron, linear,
                                          matmul, mm, outer, tril, triu)


def __getattr__(name: str):
    """``__all__``, computed when asked for (``from tinyvision.functional import *`` asks):
    every public callable imported above, never a submodule (``conv``, ``shape``... become
    attributes of this package when they load), so a line added anywhere above is exported."""
    if name == "__all__":
        from types import ModuleType

        return sorted(n for n, v in globals().items()
                      if not n.startswith("_") and callable(v) and not isinstance(v, ModuleType))
    raise AttributeError(f"module 'tinyvision.functional' has no attribute {name!r}")
