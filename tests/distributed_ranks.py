"""What each rank runs under ``mpiexec -n 2`` for tests/test_distributed.py.

    mpiexec -n 2 python -m tests.distributed_ranks equality OUT_DIR     # DDP, SyncBatchNorm, Trainer
    mpiexec -n 2 python -m tests.distributed_ranks fault-raise OUT_DIR  # (and fault-stall, fault-kill)

Every check raises on failure; an exception on any rank aborts the whole job
(tinyvision.distributed installs that hook), so mpiexec's exit code is the verdict of all ranks.
Rank 0 prints one ``OK ...`` line per check.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import tinyvision as tv
import tinyvision.distributed as dist
from tinyvision import nn
from tinyvision.data import DataLoader, TensorDataset
from tinyvision.optim import SGD

STEPS, BATCH = 20, 32  # 2 ranks x 16 against 1 process x 32


def report(text: str) -> None:
    if dist.get_rank() == 0:
        print("OK", text, flush=True)


def small_cnn(batchnorm: bool) -> nn.Module:
    """conv -> (BatchNorm) -> ReLU -> pool -> linear: every kind of gradient a CNN has."""
    layers = [nn.Conv2d(2, 4, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)]
    return nn.Sequential(*layers).double()


def data() -> TensorDataset:
    rng = np.random.default_rng(123)
    return TensorDataset(rng.standard_normal((STEPS * BATCH, 2, 6, 6)), rng.integers(0, 3, STEPS * BATCH))


def train(model: nn.Module, world: int, rank: int) -> nn.Module:
    """20 SGD steps (momentum, weight decay) on this rank's share of each batch of 32,
    drawn by a DistributedSampler (world=1: the whole batch)."""
    dataset = data()
    sampler = dist.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=5)
    loader = DataLoader(dataset, batch_size=BATCH // world, sampler=sampler)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x.double()), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def watch_overlap(ddp) -> list[int]:
    """For the first backward: how many gradients had arrived when each bucket was launched."""
    launches, arrived = [], [0]
    grad_ready, iall_reduce = ddp._grad_ready, dist.comm.iall_reduce

    def counting_hook(param):
        arrived[0] += 1
        grad_ready(param)

    def recording_launch(array):
        launches.append(arrived[0])
        return iall_reduce(array)

    ddp._grad_ready = counting_hook  # the hooks were registered as the bound method: rewire them
    for p in ddp.module.parameters():
        p._post_accumulate_hooks = {0: counting_hook}
    dist.comm.iall_reduce = recording_launch
    return launches


def check_local_batchnorm_differs() -> None:
    """Plain (local) BatchNorm normalises each half with its own statistics: not the big batch."""
    rank, world = dist.get_rank(), dist.get_world_size()
    model = small_cnn(batchnorm=True)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    train(dist.DistributedDataParallel(model), world, rank)
    single = small_cnn(batchnorm=True)
    single.load_state_dict(start)
    diff = max_difference(model.state_dict(), train(single, 1, 0).state_dict())
    assert diff > 1e-6, diff
    report(f"local BatchNorm: 2 ranks x 16 != 1 x 32 (max |diff| {diff:.2e}), as expected")


def max_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k], dtype=np.float64) - np.asarray(b[k], dtype=np.float64))))
               for k in a)


def check_training_equality(batchnorm: bool, tolerance: float) -> None:
    """2 ranks x 16 == 1 process x 32 after 20 steps, and the ranks' weights are identical."""
    rank, world = dist.get_rank(), dist.get_world_size()
    tv.manual_seed(100 + rank)  # different weights on each rank: broadcast_parameters must fix it
    model = small_cnn(batchnorm)
    if batchnorm:
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-4)  # ~100 B: several buckets
    assert len(ddp._buckets) > 2, ddp._layout
    launches = watch_overlap(ddp)
    start = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    train(ddp, world, rank)
    ours = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    everyone = dist.all_gather_object(ours)
    assert max_difference(everyone[0], everyone[1]) == 0.0, "the ranks' weights differ"
    # the reference: one process, plain BatchNorm, the whole batch, the same start
    single = small_cnn(batchnorm)
    single.load_state_dict(start)
    train(single, 1, 0)
    diff = max_difference(ours, single.state_dict())
    moved = max_difference(ours, start)
    assert diff <= tolerance and moved > 1e-2, f"2x16 vs 1x32: max |diff| {diff:.3g}, moved {moved:.3g}"
    # overlap: in the first step, the first bucket's all-reduce started while gradients of
    # other parameters were still to come
    assert launches[0] < sum(p.numel() > 0 for p in model.parameters()), launches
    report(f"{'SyncBatchNorm' if batchnorm else 'no BatchNorm'}: 2 ranks x 16 == 1 x 32 after {STEPS} "
           f"steps, max |diff| {diff:.2e} (<= {tolerance:g})")


def check_sync_batchnorm_against_torch(dtype) -> None:
    """Each rank normalises its half; gathered, outputs and input gradients equal torch's
    BatchNorm2d on the whole batch (training mode), and so do the running statistics."""
    import torch

    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 3, 4, 5)).astype(dtype) * 2 + 1
    u = rng.standard_normal(x.shape).astype(dtype)  # the upstream gradient dL/dy
    weight, bias = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    part = slice(0, 3) if rank == 0 else slice(3, 8)  # uneven shares: the counts must be global

    bn = dist.SyncBatchNorm(3, momentum=0.3, dtype=dtype)
    bn.weight.data[...], bn.bias.data[...] = weight, bias
    xs = tv.tensor(x[part], requires_grad=True)
    out = bn(xs)
    (out * tv.tensor(u[part])).sum().backward()
    local = dict(y=out.detach().numpy(), gx=xs.grad.numpy(),
                 gw=bn.weight.grad.numpy(), gb=bn.bias.grad.numpy())
    parts = dist.all_gather_object(local)

    ref = torch.nn.BatchNorm2d(3, momentum=0.3, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(weight)), ref.bias.copy_(torch.tensor(bias))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    (yt * torch.tensor(u)).sum().backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=4e-6)
    np.testing.assert_allclose(np.concatenate([p["y"] for p in parts]), yt.detach().numpy(), **tol)
    np.testing.assert_allclose(np.concatenate([p["gx"] for p in parts]), xt.grad.numpy(), **tol)
    # weight/bias gradients are each rank's local sum; DDP's average times R is the sum
    np.testing.assert_allclose(sum(p["gw"] for p in parts), ref.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(sum(p["gb"] for p in parts), ref.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(bn.running_mean.numpy(), ref.running_mean.numpy(), **tol)
    np.testing.assert_allclose(bn.running_var.numpy(), ref.running_var.numpy(), **tol)
    report(f"SyncBatchNorm over 2 ranks == torch BatchNorm2d on the whole batch ({np.dtype(dtype).name}): "
           "output, input/weight/bias gradients, running statistics")


def check_unused_parameters_and_no_sync() -> None:
    """A branch only rank 0 uses: synchronize() averages its gradient with rank 1's zeros.
    Two backwards under no_sync() and one outside: the average of each rank's sum."""
    rank = dist.get_rank()
    tv.manual_seed(0)
    trunk, branch = nn.Linear(4, 3).double(), nn.Linear(3, 1).double()
    holder = nn.ModuleList([trunk, branch])
    ddp = dist.DistributedDataParallel(holder)
    xs = [tv.tensor(np.random.default_rng(10 * r + k).standard_normal((2, 4))) for r in range(2) for k in range(3)]
    out = trunk(xs[3 * rank])
    loss = branch(out).sum() if rank == 0 else out.sum()
    loss.backward()
    ddp.synchronize()
    with tv.no_grad():  # the branch's input on rank 0 (its weight's gradient); rank 1 adds zeros
        expected = trunk(xs[0])
    np.testing.assert_allclose(branch.weight.grad.numpy(), expected.numpy().sum(0, keepdims=True) / 2, rtol=1e-13)
    holder.zero_grad()
    with ddp.no_sync():
        trunk(xs[3 * rank + 1]).sum().backward()
        trunk(xs[3 * rank + 2]).sum().backward()
    trunk(xs[3 * rank]).sum().backward()
    ddp.synchronize()  # the branch went unused on both ranks this time
    everyone = sum(xs[3 * r + k].numpy().sum(0) for r in range(2) for k in range(3)) / 2
    np.testing.assert_allclose(trunk.weight.grad.numpy(), np.tile(everyone, (3, 1)), rtol=1e-13)
    report("unused parameters (synchronize) and no_sync() gradient accumulation")


def check_collectives() -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    total = dist.all_reduce(np.array([rank + 1.0, 2.0]))
    assert total.tolist() == [world * (world + 1) / 2, 2.0 * world], total
    a = np.full(3, float(rank))
    dist.broadcast(a)
    assert a.tolist() == [0.0] * 3, a
    sums, count = dist.all_reduce_metrics({"acc": 0.5 * (rank + 1), "loss": 1.0}, 10 + rank)
    assert count == 21 and abs(sums["acc"] - 1.5) < 1e-15, (sums, count)
    report("all_reduce, broadcast, all_reduce_metrics")


def equality(out_dir: str) -> None:
    dist.init(timeout=60)
    assert dist.get_world_size() == 2, "run under mpiexec -n 2"
    check_collectives()
    check_unused_parameters_and_no_sync()
    check_training_equality(batchnorm=False, tolerance=1e-12)
    check_training_equality(batchnorm=True, tolerance=1e-10)
    check_local_batchnorm_differs()
    for dtype in (np.float64, np.float32):
        check_sync_batchnorm_against_torch(dtype)
    check_trainer_resume(out_dir)
    check_trainer_sync_batchnorm()


def check_trainer_resume(out_dir: str) -> None:
    """Trainer(distributed=True): the ranks end equal, only rank 0 writes, and 1 epoch +
    resume for 1 more == 2 epochs straight (weights, history, each rank's dropout stream)."""
    from tinyvision.train import Classifier, Trainer

    tv.set_default_dtype(np.float64)  # the loader's float batches: float64, as the model

    def run(epochs: int, out: str | None, resume: str | None = None):
        tv.manual_seed(0)
        model = nn.Sequential(small_cnn(False), nn.Dropout(0.3), nn.Linear(3, 3)).double()
        module = Classifier(model, optimizer=lambda p: SGD(p, lr=0.05, momentum=0.9))
        trainer = Trainer(max_epochs=epochs, out_dir=out, progress=False, distributed=True)
        dataset = TensorDataset(data().tensors[0][:96], data().tensors[1][:96])
        history = trainer.fit(module, DataLoader(dataset, batch_size=16, shuffle=True), resume_from=resume)
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}, history, trainer, module

    straight, history, trainer, module = run(2, None)
    # validation: each rank a share (21 samples: 11 and 10), sums all-reduced == the whole set
    val = DataLoader(TensorDataset(data().tensors[0][-21:], data().tensors[1][-21:]), batch_size=8)
    sharded, whole = trainer.validate(module, val), Trainer(progress=False).validate(module, val)
    assert all(abs(sharded[k] - whole[k]) < 1e-12 for k in whole), (sharded, whole)
    metrics = [{k: v for k, v in row.items() if k != "time_s"} for row in history]
    assert dist.all_gather_object(metrics)[1] == metrics, "ranks logged different metrics"
    first = os.path.join(out_dir, "first")
    run(1, first)
    resumed, resumed_history, _, _ = run(2, None, os.path.join(first, "last.ckpt.npz"))
    assert max_difference(straight, resumed) == 0.0, max_difference(straight, resumed)
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in resumed_history]
    everyone = dist.all_gather_object(straight)
    assert max_difference(everyone[0], everyone[1]) == 0.0, "the ranks' weights differ"
    ckpt = tv.load(os.path.join(first, "last.ckpt.npz"))
    assert sorted(ckpt["rng_ranks"]) == ["0", "1"], list(ckpt)
    assert sorted(os.listdir(first)) == ["curves.png", "last.ckpt.npz", "metrics.csv"]  # no val: no best
    report("Trainer(distributed=True): ranks equal; 1 epoch + resume == 2 epochs (weights, losses); "
           "sharded validation == the whole set")


def check_trainer_sync_batchnorm() -> None:
    """Trainer(distributed=True, sync_batchnorm=True) on 2 ranks == the plain Trainer on one
    process, for a CNN with BatchNorm (unshuffled, so both see the same batches of 16)."""
    from tinyvision.train import Classifier, Trainer

    tv.set_default_dtype(np.float64)
    dataset = TensorDataset(data().tensors[0][:64], data().tensors[1][:64])
    weights = []
    for distributed in (True, False):
        tv.manual_seed(0)
        module = Classifier(small_cnn(True), optimizer=lambda p: SGD(p, lr=0.05, momentum=0.9))
        Trainer(max_epochs=2, progress=False, distributed=distributed, sync_batchnorm=distributed).fit(
            module, DataLoader(dataset, batch_size=16))
        weights.append({k: v.numpy().copy() for k, v in module.state_dict().items()})
        assert isinstance(module.model[1], dist.SyncBatchNorm) == distributed
    diff = max_difference(*weights)
    assert diff < 1e-10, diff
    report(f"Trainer(distributed=True, sync_batchnorm=True) == one process, with BatchNorm (max |diff| {diff:.1e})")


# ----------------------------------------------------------------- faults
def fault(kind: str, out_dir: str) -> None:
    """Train with the Trainer on 2 ranks; rank 1 fails in epoch 2's third step in the way
    ``kind`` says, while rank 0 writes checkpoints. The others must stop, not hang."""
    from tinyvision.train import Classifier, Trainer

    # the stalled rank is found by the other's timeout; the others must not hit it while rank 0
    # writes a checkpoint on a busy machine
    dist.init(timeout=8 if kind == "stall" else 60)
    tv.set_default_dtype(np.float64)
    rank = dist.get_rank()
    dataset = data()

    class Failing(Classifier):
        def training_step(self, batch, batch_idx):
            if rank == 1 and trainer.epoch == 1 and batch_idx == 2:
                if kind == "raise":
                    raise RuntimeError("simulated failure on rank 1")
                if kind == "stall":
                    time.sleep(3600)
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().training_step(batch, batch_idx)

    module = Failing(small_cnn(False), optimizer=lambda p: SGD(p, lr=0.05))
    trainer = Trainer(max_epochs=3, out_dir=out_dir, progress=False, distributed=True)
    loader = DataLoader(dataset, batch_size=16, shuffle=True, seed=0)
    trainer.fit(module, loader)


if __name__ == "__main__":
    if sys.argv[1] == "equality":
        equality(sys.argv[2])
    elif sys.argv[1].startswith("fault-"):
        fault(sys.argv[1][len("fault-"):], sys.argv[2])
    else:
        raise SystemExit(f"unknown case {sys.argv[1]!r}")
