"""DistributedDataParallel: every rank holds the whole model, takes its share of each batch,
and the gradients are averaged over the ranks before the optimizer steps.

Why that equals one process on the big batch: with R ranks of B samples each, rank r's loss is
L_r = 1/B sum_{i in r} l_i, and the big batch's loss is L = 1/(RB) sum_i l_i = 1/R sum_r L_r.
The gradient is linear, so dL/dw = 1/R sum_r dL_r/dw: the mean of the ranks' gradients. Start
every rank from the same weights (``broadcast_parameters``) and the same optimizer, apply the
same averaged gradient, and the weights stay identical on every rank, and equal to the big
batch's. (docs/distributed.md: what breaks it: BatchNorm, dropout, uneven shards.)

How the average is taken:

* **Buckets.** One all-reduce per parameter would pay MPI's latency a hundred times per step;
  one for the whole model could only start after backward ends. So parameters are packed, in
  reverse order (backward produces the last layer's gradients first), into a few flat buffers
  of about ``bucket_cap_mb`` each, and each buffer is all-reduced at once.
* **Overlap.** Each parameter has a post-accumulate-grad hook: when backward has finished its
  gradient, the hook copies it into its bucket; when a bucket is full, a non-blocking
  ``Iallreduce`` starts on it while backward goes on to earlier layers. The last hook waits
  for all of them, divides by R and copies the averages back into ``.grad``.
* **Order.** MPI matches collectives by the order in which ranks start them, so buckets are
  launched strictly in index order, whatever order they fill in.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.distributed import comm
from tinyvision.kernels import compat
from tinyvision.nn.module import Module


def broadcast_parameters(module: Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer of ``module`` with rank ``src``'s, in place, so
    that all ranks start from the same weights (whatever seed each one drew them with)."""
    for p in module.parameters():
        comm.broadcast(p.data, src)
    for b in module.buffers():
        if b is not None:
            comm.broadcast(b.data, src)


class _Bucket:
    """A flat buffer for the gradients of ``params`` (same dtype), and where each one sits."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.offsets = np.cumsum([0] + [p.numel() for p in params])
        self.flat = np.zeros(int(self.offsets[-1]), dtype=params[0].dtype)
        self.reset()

    def reset(self) -> None:
        self.filled = [False] * len(self.params)
        self.pending = len(self.params)  # gradients still to come in this backward
        self.request: Any = None

    def slot(self, k: int) -> np.ndarray:
        return self.flat[self.offsets[k]:self.offsets[k + 1]]

    def fill(self, k: int, grad: Any) -> None:
        self.slot(k)[...] = compat.to_numpy(grad).ravel()
        self.filled[k] = True
        self.pending -= 1


def assign_buckets(params: list[Tensor], cap_bytes: int) -> list[list[int]]:
    """Indices of ``params`` grouped into buckets: walked in reverse (the order backward
    finishes them), a new bucket starts when the dtype changes or the cap would be passed.
    A parameter bigger than the cap gets a bucket of its own."""
    buckets: list[list[int]] = []
    size, dtype = 0, None
    for i in reversed(range(len(params))):
        nbytes = params[i].numel() * params[i].dtype.itemsize
        if not buckets or params[i].dtype != dtype or size + nbytes > cap_bytes:
            buckets.append([])
            size, dtype = 0, params[i].dtype
        buckets[-1].append(i)
        size += nbytes
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` so that after ``loss.backward()`` every parameter's ``.grad`` is the
    mean of that gradient over all ranks (``torch.nn.parallel.DistributedDataParallel``).

    module: the model (or a TrainModule); its parameters and buffers are broadcast from rank 0
        here, as torch does, so that every rank starts equal.
    bucket_cap_mb: about how many MB of gradients go into one all-reduce (torch's default 25).
    broadcast_buffers: before each forward, copy rank 0's buffers (BatchNorm running statistics)
        to every rank, as torch does, so that the ranks' models stay equal in eval mode too.

    ``forward`` calls ``module``. Parameters that get no gradient in a backward (unused
    branches) keep their buckets waiting: call ``synchronize()`` after such a backward, which
    counts them as zero (torch's ``find_unused_parameters``). ``no_sync()`` skips the all-reduce
    for gradient accumulation over several backwards.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a tinyvision Module, got {type(module).__name__}")
        if bucket_cap_mb <= 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self._sync_enabled = True
        broadcast_parameters(module)
        # CuPy parameters work too: their gradients go through the host buffers
        params = [p for p in module.parameters() if p.requires_grad]
        self._bucket_of: dict[int, tuple[int, int]] = {}  # id(param) -> (bucket index, slot)
        self._layout = assign_buckets(params, int(bucket_cap_mb * 2**20))
        for b, indices in enumerate(self._layout):
            for k, i in enumerate(indices):
                self._bucket_of[id(params[i])] = (b, k)
                params[i].register_post_accumulate_grad_hook(self._grad_ready)
        self._buckets = [_Bucket([params[i] for i in indices]) for indices in self._layout]
        self._launched = 0  # buckets started so far in this backward, in index order

    # ----------------------------------------------------------------- forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.sync_buffers()
        return self.module(*args, **kwargs)

    def sync_buffers(self) -> None:
        """Rank 0's buffers to every rank (done by ``forward`` when ``broadcast_buffers``)."""
        if any(b.pending < len(b.params) for b in self._buckets):
            raise RuntimeError("DistributedDataParallel: the previous backward did not finish its gradient "
                               "all-reduce (some parameters got no gradient): call synchronize() after "
                               "backward when parts of the model can go unused")
        if not self.broadcast_buffers or comm.get_world_size() == 1:
            return
        buffers = [b for b in self.module.buffers() if b is not None and b.dtype.kind == "f"]
        if buffers:  # one broadcast for all of them: a flat copy, then back
            flat = np.concatenate([compat.to_numpy(b.data).ravel() for b in buffers])
            comm.broadcast(flat)
            start = 0
            for b in buffers:
                b.data[...] = compat.to_device(flat[start:start + b.numel()].reshape(b.shape), b.device)
                start += b.numel()

    # ----------------------------------------------------------------- backward side
    def _grad_ready(self, param: Tensor) -> None:
        """Post-accumulate hook: ``param.grad`` is final for this backward."""
        if not self._sync_enabled or comm.get_world_size() == 1:
            return
        b, k = self._bucket_of[id(param)]
        self._buckets[b].fill(k, param.grad.data)
        self._launch_ready()
        self._progress()
        if self._launched == len(self._buckets):
            self._finish()

    def _launch_ready(self) -> None:
        """Start the all-reduce of every full bucket, strictly in index order (see module doc)."""
        while self._launched < len(self._buckets) and self._buckets[self._launched].pending == 0:
            bucket = self._buckets[self._launched]
            bucket.request = comm.iall_reduce(bucket.flat)
            self._launched += 1

    def _progress(self) -> None:
        """Poke MPI: without a progress thread, MPICH moves a non-blocking all-reduce on only
        while some MPI call runs, so each hook lets the buckets in flight advance."""
        comm.poll([b.request for b in self._buckets[:self._launched]])

    def _finish(self) -> None:
        """Wait for every bucket, then ``.grad`` <- the sum over ranks / world size."""
        comm.wait([b.request for b in self._buckets], f"gradient all-reduce ({len(self._buckets)} buckets)")
        scale = 1.0 / comm.get_world_size()
        for bucket in self._buckets:
            for k, p in enumerate(bucket.params):
                mean = (bucket.slot(k) * scale).reshape(p.shape)
                if p.grad is None:  # unused on this rank, used on another: its average
                    p.grad = Tensor(compat.to_device(mean.copy(), p.device))
                else:
                    p.grad.data[...] = compat.to_device(mean, p.device)
            bucket.reset()
        self._launched = 0

    def synchronize(self) -> None:
        """Finish the gradient all-reduce when some parameters got no gradient in this
        backward: their slots count as zeros. A no-op when the hooks already finished it."""
        if comm.get_world_size() == 1 or not self._sync_enabled:
            return
        if not any(any(b.filled) for b in self._buckets):
            return  # the hooks finished it (or no gradient came at all)
        for bucket in self._buckets:
            for k, filled in enumerate(bucket.filled):
                if not filled:
                    bucket.slot(k)[...] = 0
            bucket.pending = 0
        self._launch_ready()
        self._finish()

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backwards inside accumulate local gradients without communicating; the first
        backward after it all-reduces the accumulated sums (torch's ``no_sync``)."""
        self._sync_enabled = False
        try:
            yield
        finally:
            self._sync_enabled = True
