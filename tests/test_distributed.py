"""tinyvision.distributed: the sampler against torch's, bucketing, the engine's post-accumulate
hook, SyncBatchNorm against torch's BatchNorm and by finite differences (one process), and,
under ``mpiexec -n 2`` (tests/distributed_ranks.py, marked ``mpi``), the proofs that 2 ranks x
16 equal 1 process x 32 and that a failing rank stops the job instead of hanging it.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import tinyvision as tv
import tinyvision.distributed as dist
from tests.helpers import check_op
from tinyvision import nn
from tinyvision.data import DataLoader
from tinyvision.distributed.sync_batchnorm import sync_batch_norm

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------- DistributedSampler
@pytest.mark.parametrize("n", [1, 7, 10, 12])
@pytest.mark.parametrize("replicas", [1, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_matches_torch_without_shuffle(n, replicas, drop_last):
    for rank in range(replicas):
        ours = dist.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = tdata.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shuffle_shares_one_permutation(drop_last):
    """torch draws from torch.randperm, we from NumPy: the orders differ, the semantics not.
    Interleaved, the ranks' lists are one permutation of seed + epoch, padded or cut."""
    n, replicas = 10, 4
    shards = [list(dist.DistributedSampler(range(n), replicas, r, seed=3, drop_last=drop_last))
              for r in range(replicas)]
    merged = [shard[i] for i in range(len(shards[0])) for shard in shards]
    perm = np.random.default_rng(3).permutation(n).tolist()
    assert merged == (perm[:8] if drop_last else perm + perm[:2])
    sampler = dist.DistributedSampler(range(n), replicas, 0, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.load_state_dict({"epoch": 0})
    assert list(sampler) == first


def test_sampler_bad_rank_and_loader_with_sampler():
    with pytest.raises(ValueError, match="invalid rank 2"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)
    data = tv.data.TensorDataset(np.arange(10.0))
    sampler = dist.DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    loader = DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 3 and [b[0].tolist() for b in loader] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(data, batch_size=2, sampler=sampler, shuffle=True)


# ----------------------------------------------------------------- buckets and the hook
def test_assign_buckets_reverse_order_cap_and_dtype():
    params = [nn.Parameter(np.zeros(n, dtype=d)) for n, d in
              [(10, np.float32), (20, np.float32), (5, np.float32), (100, np.float32), (3, np.float64)]]
    # reversed: 4 (float64 alone), 3 (400 B > cap: alone), then 2 + 1 (100 B), then 0
    assert dist.assign_buckets(params, cap_bytes=120) == [[4], [3], [2, 1], [0]]
    assert dist.assign_buckets(params[:4], cap_bytes=10**6) == [[3, 2, 1, 0]]


def test_post_accumulate_hook_fires_once_with_the_whole_gradient_during_backward():
    """A weight used twice gets one call, after both uses; the last layer's fires before the
    first layer's backward has run (that is what lets DDP overlap)."""
    w1 = tv.tensor(np.ones(3), requires_grad=True)
    w2 = tv.tensor(np.full(3, 2.0), requires_grad=True)
    seen = []
    w1.register_post_accumulate_grad_hook(lambda t: seen.append(("w1", t.grad.numpy().copy())))
    handle = w2.register_post_accumulate_grad_hook(lambda t: seen.append(("w2", t.grad.numpy().copy())))
    y = ((w1 * 3.0).exp() * w2).sum() + (w1 * w1).sum()
    y.backward()
    assert [name for name, _ in seen] == ["w2", "w1"]
    np.testing.assert_allclose(seen[1][1], 3 * np.exp(3.0) * 2 + 2)
    handle.remove()
    seen.clear()
    (w2 * 2).sum().backward()
    assert seen == []
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w1 * 2).register_post_accumulate_grad_hook(print)


def test_ddp_in_a_world_of_one_leaves_gradients_alone():
    tv.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    x = tv.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    model(x).sum().backward()
    expected = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    ddp = dist.DistributedDataParallel(model)
    ddp(x).sum().backward()
    ddp.synchronize()
    for p, g in zip(model.parameters(), expected):
        np.testing.assert_array_equal(p.grad.numpy(), g)
    with pytest.raises(TypeError, match="must be a tinyvision Module"):
        dist.DistributedDataParallel(torch.nn.Linear(2, 2))


# ----------------------------------------------------------------- SyncBatchNorm, one process
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_sync_batchnorm_alone_is_batchnorm(shape):
    """In a world of one, SyncBatchNorm is torch's BatchNorm (forward, gradients, float32 and
    float64) and passes the finite-difference check."""
    x = np.random.default_rng(7).standard_normal(shape) * 2 + 1
    w, b = np.random.default_rng(1).standard_normal(3), np.random.default_rng(2).standard_normal(3)

    def theirs(x, w, b):
        return torch.nn.functional.batch_norm(x, None, None, w, b, training=True)

    def ours(x, w, b):
        return sync_batch_norm(x, None, None, w, b)

    check_op(ours, theirs, [x, w, b])


def test_convert_sync_batchnorm_keeps_parameters_and_state_dict():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, momentum=0.2), nn.Sequential(nn.BatchNorm1d(4)))
    model[1].running_mean.data[...] = 3.0
    keys, weight = list(model.state_dict()), model[1].weight
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[2][0], dist.SyncBatchNorm)
    assert model[1].weight is weight and model[1].momentum == 0.2 and list(model.state_dict()) == keys
    assert model[1].running_mean.tolist() == [3.0, 3.0]
    model.eval()
    x = tv.tensor(np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32))
    ref = torch.nn.BatchNorm2d(2, momentum=0.2).eval()
    ref.running_mean.fill_(3.0)
    np.testing.assert_allclose(model[1](x).detach().numpy(), ref(torch.tensor(x.numpy())).detach().numpy(), rtol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0"):
        dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(ValueError, match=r"input has 3 channels \(shape \(2, 3\)\), expected num_features = 4"):
        dist.SyncBatchNorm(4)(tv.zeros(2, 3))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        dist.SyncBatchNorm(3)(tv.zeros(1, 3))
    with pytest.raises(ValueError, match="timeout must be > 0"):
        dist.init(timeout=0)
    with pytest.raises(ValueError, match="op must be 'sum' or 'mean'"):
        dist.all_reduce(np.ones(2), op="max")


def test_shard_loader_needs_a_batch_the_ranks_divide(monkeypatch):
    data = tv.data.TensorDataset(np.arange(10.0))
    monkeypatch.setattr(dist.comm, "get_world_size", lambda: 3)
    monkeypatch.setattr(dist.comm, "get_rank", lambda: 1)
    with pytest.raises(ValueError, match="batch size 16 must be divisible by the 3 ranks"):
        dist.shard_loader(DataLoader(data, batch_size=16, shuffle=True))
    shard = dist.shard_loader(DataLoader(data, batch_size=6, shuffle=False))
    assert [b[0].tolist() for b in shard] == [[1, 4], [7, 0]]  # 4 each: 0..9 padded with 0, 1
    evaluation = dist.shard_loader(DataLoader(data, batch_size=6), train=False)
    assert [b[0].tolist() for b in evaluation] == [[1, 4], [7]]  # no padding


# ----------------------------------------------------------------- under mpiexec -n 2
def mpiexec() -> str:
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        pytest.skip("mpi4py / mpiexec not installed: pip install 'tinyvision[mpi]' (make test-mpi)")
    return exe


def run_ranks(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "tests.distributed_ranks", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return result, time.monotonic() - start


@pytest.mark.mpi
def test_two_ranks_equal_one_process_on_the_big_batch(tmp_path):
    """The checks of tests/distributed_ranks.py: 2 x 16 == 1 x 32 over 20 SGD steps (float64,
    1e-12; with SyncBatchNorm 1e-10), local BatchNorm differs, SyncBatchNorm == torch's
    BatchNorm2d on the whole batch (uneven shares), unused parameters and no_sync, the Trainer's
    ranks agree, resume exactly and validate as on the whole set."""
    result, _ = run_ranks("equality", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("OK ") == 9, result.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("kind, message", [
    ("raise", "stopping all 2 ranks after an error on this rank"),   # an exception on rank 1
    ("stall", "did not finish within 8 s: another rank has died"),   # rank 1 hangs: rank 0's timeout
    ("kill", "BAD TERMINATION"),                                      # rank 1 killed: mpiexec ends rank 0
])
def test_a_failing_rank_stops_the_job_and_leaves_a_whole_checkpoint(tmp_path, kind, message):
    """Rank 1 fails in epoch 2 after rank 0 wrote epoch 1's checkpoint: the job ends with an
    error within seconds (the timeout is 8 s for a stall) and last.ckpt.npz is epoch 1's, whole."""
    result, seconds = run_ranks(f"fault-{kind}", str(tmp_path), timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert seconds < 60, f"took {seconds:.0f} s"
    assert int(tv.load(tmp_path / "last.ckpt.npz")["epoch"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "last.ckpt.npz", "metrics.csv"]


@pytest.mark.mpi
@pytest.mark.slow
def test_cli_train_distributed(tmp_path):
    """`mpiexec -n 2 tinyvision train ... --distributed`: one rank speaks, rank 0 writes."""
    command = [mpiexec(), "-n", "2", sys.executable, "-m", "tinyvision.cli", "train", "--model", "lenet5",
               "--data", "digits", "--epochs", "1", "--distributed", "--quiet", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("training lenet5") == 1 and "test accuracy" in result.stdout, result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt.npz", "curves.png", "last.ckpt.npz", "metrics.csv"]
    assert sorted(tv.load(tmp_path / "last.ckpt.npz")["rng_ranks"]) == ["0", "1"]
