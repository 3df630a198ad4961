"""The Trainer: it learns, logs, checkpoints atomically, resumes exactly and stops on NaN."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn, optim, serialization
from tinyvision.data import DataLoader, TensorDataset
from tinyvision.train import Classifier, NonFiniteLossError, TrainModule, Trainer


def blobs(n: int = 120, seed: int = 0) -> TensorDataset:
    """Three Gaussian blobs in 4-D: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=np.float32)
    x = centres[y] + rng.standard_normal((n, 4)).astype(np.float32) * 0.5
    return TensorDataset(x, y.astype(np.int64))


def make(seed: int = 0) -> Classifier:
    tv.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    return Classifier(net, lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                      lambda o: optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5))


def loaders(seed: int = 0):
    return DataLoader(blobs(), batch_size=16, shuffle=True, seed=seed), DataLoader(blobs(60, seed=1), batch_size=30)


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


def test_fit_learns_and_writes_metrics_curves_and_checkpoints(tmp_path: Path) -> None:
    train, val = loaders()
    history = Trainer(max_epochs=5, out_dir=tmp_path, progress=False).fit(make(), train, val)
    assert len(history) == 5
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.9
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "last.ckpt.npz").exists() and (tmp_path / "best.ckpt.npz").exists()
    assert not list(tmp_path.glob("*.tmp*"))  # no temporary files left behind


def test_same_seed_same_run() -> None:
    runs = [Trainer(max_epochs=2, progress=False).fit(make(), *loaders()) for _ in range(2)]
    assert without_time(runs[0]) == without_time(runs[1])
    other = Trainer(max_epochs=2, progress=False).fit(make(), *loaders(seed=1))
    assert without_time(other) != without_time(runs[0])  # the seed matters: the check can fail


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Weights, optimizer moments, scheduler, Dropout's generator and the loader's shuffle all
    continue where they stopped: epochs 3-4 after a resume equal epochs 3-4 of one run."""
    train, val = loaders()
    full = make()
    full_history = Trainer(max_epochs=4, progress=False).fit(full, train, val)

    train, val = loaders()
    Trainer(max_epochs=2, out_dir=tmp_path, progress=False).fit(make(), train, val)
    train, val = loaders(seed=99)  # a different shuffle: the checkpoint must restore the loader's
    resumed = make(seed=123)  # different initial weights: the checkpoint must overwrite them
    history = Trainer(max_epochs=4, out_dir=tmp_path, progress=False, seed=7).fit(
        resumed, train, val, resume_from=tmp_path / "last.ckpt.npz")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert without_time(history) == without_time(full_history)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    train, val = loaders()
    Trainer(max_epochs=1, out_dir=tmp_path, progress=False).fit(make(), train, val)
    before = (tmp_path / "last.ckpt.npz").read_bytes()

    def killed(fd: int) -> None:  # the new file is half written when this runs
        raise KeyboardInterrupt("killed during save (simulated)")

    monkeypatch.setattr(serialization.os, "fsync", killed)
    train, val = loaders()
    with pytest.raises(KeyboardInterrupt, match="simulated"):
        Trainer(max_epochs=2, out_dir=tmp_path, progress=False).fit(
            make(), train, val, resume_from=tmp_path / "last.ckpt.npz")
    monkeypatch.undo()
    assert (tmp_path / "last.ckpt.npz").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "metrics.csv"))] == ["1"]
    train, val = loaders()
    history = Trainer(max_epochs=2, out_dir=tmp_path, progress=False).fit(
        make(), train, val, resume_from=tmp_path / "last.ckpt.npz")
    assert [r["epoch"] for r in history] == [1, 2]


def test_nan_loss_stops_with_the_step(tmp_path: Path) -> None:
    class Exploding(TrainModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(tv.ones(1))

        def training_step(self, batch, batch_idx):
            return (self.w * float("nan") if batch_idx == 2 else self.w).sum()

        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    train, _ = loaders()
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2"):
        Trainer(max_epochs=1, progress=False).fit(Exploding(), train)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not a checkpoint"])
def test_a_damaged_checkpoint_gives_a_clear_error(tmp_path: Path, damage: str) -> None:
    train, val = loaders()
    Trainer(max_epochs=1, out_dir=tmp_path, progress=False).fit(make(), train, val)
    bad = tmp_path / "last.ckpt.npz"
    if damage == "garbage":
        bad.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:-1000])
    else:
        tv.save(make().state_dict(), bad)
    expected = "not a Trainer checkpoint" if damage == "not a checkpoint" else "corrupt or truncated"
    with pytest.raises(ValueError, match=f"last.ckpt.npz.*{expected}"):
        Trainer(max_epochs=2, progress=False).fit(make(), train, val, resume_from=bad)


def test_max_epochs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_epochs"):
        Trainer(max_epochs=0)


def test_a_step_interval_scheduler_steps_after_every_optimizer_step(tmp_path: Path) -> None:
    """Lightning's {"interval": "step"}: LinearLR warm-up over 5 steps, then the base rate; the
    lr column logs the rate at the start of each epoch (8 batches per epoch here)."""
    tv.manual_seed(0)
    net = nn.Linear(4, 3)
    module = Classifier(net, lambda p: optim.SGD(p, lr=0.1),
                        lambda o: optim.lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=5),
                        scheduler_interval="step")
    train, val = loaders()
    history = Trainer(max_epochs=2, progress=False).fit(module, train, val)
    assert [row["lr"] for row in history] == pytest.approx([0.05, 0.1])
    # the same scheduler stepped per epoch is still warming up at epoch 2
    module.scheduler_interval = "epoch"
    history = Trainer(max_epochs=2, progress=False).fit(module, train, val)
    assert [row["lr"] for row in history] == pytest.approx([0.05, 0.06])
    with pytest.raises(ValueError, match="scheduler_interval"):
        Classifier(net, lambda p: optim.SGD(p, lr=0.1), scheduler_interval="batch")


def test_the_epoch_line_prints_a_small_rate_readably(capsys) -> None:
    module = Classifier(nn.Linear(4, 3), lambda p: optim.SGD(p, lr=3e-6))
    Trainer(max_epochs=1).fit(module, *loaders())
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch 1 "))
    assert "  lr 3e-06  " in line and "  train_loss " in line


def test_resume_with_a_step_scheduler_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    def module() -> Classifier:
        tv.manual_seed(0)
        return Classifier(nn.Linear(4, 3), lambda p: optim.AdamW(p, lr=0.01),
                          lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=24), scheduler_interval="step")

    whole = Trainer(max_epochs=3, progress=False).fit(module(), *loaders())
    Trainer(max_epochs=1, out_dir=tmp_path, progress=False).fit(module(), *loaders())
    resumed = Trainer(max_epochs=3, out_dir=tmp_path, progress=False).fit(
        module(), *loaders(), resume_from=tmp_path / "last.ckpt.npz")
    assert without_time(resumed) == without_time(whole)
