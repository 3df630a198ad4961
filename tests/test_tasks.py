"""Tasks and honest model selection: the registry, the validation split, best-by-validation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import nn, optim
from tinyvision.cli import main
from tinyvision.data import DataLoader, TensorDataset, random_split
from tinyvision.train import Classifier, TrainModule, Trainer, get_task, list_tasks
from tinyvision.train.tasks import TASKS


# ---------------------------------------------------------------------- random_split
def test_random_split_is_a_seeded_partition() -> None:
    data = TensorDataset(np.arange(50.0)[:, None])
    a, b = random_split(data, [40, 10], seed=3)
    assert (len(a), len(b)) == (40, 10)
    assert sorted([*a.indices, *b.indices]) == list(range(50))
    again = random_split(data, [40, 10], seed=3)
    assert list(again[1].indices) == list(b.indices)
    assert list(random_split(data, [40, 10], seed=4)[1].indices) != list(b.indices)


@pytest.mark.parametrize("n, fractions, expected", [  # the sizes torch.utils.data.random_split gives
    (11, [0.3, 0.3, 0.4], [4, 3, 4]), (10, [0.25] * 4, [3, 3, 2, 2])])
def test_random_split_fractions_hand_out_the_remainder_like_torch(n, fractions, expected) -> None:
    torch = pytest.importorskip("torch")
    assert [len(p) for p in torch.utils.data.random_split(range(n), fractions)] == expected
    assert [len(p) for p in random_split(TensorDataset(np.zeros((n, 1))), fractions)] == expected


@pytest.mark.parametrize("lengths", [[30, 10], [60, -10], [0.5, 0.6]])
def test_random_split_names_bad_lengths(lengths) -> None:
    with pytest.raises(ValueError, match="random_split: .*len\\(dataset\\) = 50"):
        random_split(TensorDataset(np.zeros((50, 1))), lengths)


# ---------------------------------------------------------------------- the registry
def test_registry_names_and_errors() -> None:
    assert list_tasks()[0] == "classify" and "segment" in list_tasks()
    assert get_task("classify").name == "classify"
    with pytest.raises(ValueError, match="unknown task 'sort'; choose one of: classify"):
        get_task("sort")


def test_a_declared_task_whose_module_is_missing_says_so(monkeypatch) -> None:
    monkeypatch.setitem(TASKS, "nothing", "tinyvision.train.no_such_module:Nothing")
    with pytest.raises(ValueError, match="task 'nothing' is declared but not built yet"):
        get_task("nothing")


# ---------------------------------------------------------------------- best by validation
class Scripted(TrainModule):
    """A module whose validation metric follows a script, to see which epoch the Trainer keeps."""

    def __init__(self, script: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(tv.zeros(1))
        self.script, self.calls = script, 0

    def training_step(self, batch, batch_idx):
        return (self.w - 1.0).pow(2).sum()

    def validation_step(self, batch, batch_idx):
        return {"loss": 0.0}

    def on_validation_epoch_start(self) -> None:
        self.seen = 0

    def on_validation_epoch_end(self) -> dict[str, float]:
        value = self.script[self.calls]
        self.calls += 1
        return {"score": value}

    def configure_optimizers(self):
        return optim.SGD(self.parameters(), lr=0.1)


def test_best_epoch_follows_the_monitor_and_its_weights_come_back(tmp_path: Path) -> None:
    data = DataLoader(TensorDataset(np.zeros((4, 1), dtype=np.float32)), batch_size=4)
    module = Scripted([0.2, 0.9, 0.5, float("nan")])
    trainer = Trainer(max_epochs=4, out_dir=tmp_path, progress=False, monitor="val_score")
    history = trainer.fit(module, data, data)
    assert [r["val_score"] for r in history][:3] == [0.2, 0.9, 0.5]  # the hook's dict is merged in
    assert trainer.best_epoch == 2
    saved = tv.load(tmp_path / "best.ckpt.npz")
    assert int(saved["epoch"]) == 2
    trainer.restore_best(module)
    assert np.allclose(module.w.detach().numpy(), saved["model"]["w"])
    assert not np.allclose(module.w.detach().numpy(), tv.load(tmp_path / "last.ckpt.npz")["model"]["w"])


def test_in_memory_best_without_an_out_dir() -> None:
    data = DataLoader(TensorDataset(np.zeros((4, 1), dtype=np.float32)), batch_size=4)
    module = Scripted([0.9, 0.1, 0.2])
    trainer = Trainer(max_epochs=3, progress=False, monitor="val_score")
    trainer.fit(module, data, data)
    after_one_step = 0.2  # w = 0 - 0.1 * 2 * (0 - 1)
    assert trainer.restore_best(module) == 1
    assert np.isclose(module.w.detach().numpy()[0], after_one_step)


def test_resume_remembers_which_epoch_was_best(tmp_path: Path) -> None:
    data = DataLoader(TensorDataset(np.zeros((4, 1), dtype=np.float32)), batch_size=4)
    Trainer(max_epochs=2, out_dir=tmp_path, progress=False, monitor="val_score").fit(Scripted([0.7, 0.3]), data, data)
    module = Scripted([0.7, 0.3, 0.5])
    module.calls = 2
    trainer = Trainer(max_epochs=3, out_dir=tmp_path, progress=False, monitor="val_score")
    trainer.fit(module, data, data, resume_from=tmp_path / "last.ckpt.npz")
    assert trainer.best_epoch == 1  # 0.5 at epoch 3 does not beat 0.7 at epoch 1


# ---------------------------------------------------------------------- classify on the CLI
def test_classify_holds_out_a_validation_split_disjoint_from_training() -> None:
    task = get_task("classify")
    config = {"data": "digits", "image_size": None, "augment": True, "seed": 0}
    train, val, test = task.datasets(config)
    assert (len(train), len(val), len(test)) == (1298, 144, 355)
    assert not set(train.indices) & set(val.indices)
    assert val.dataset.transform is None and train.dataset.transform is not None  # val is never augmented


def test_train_then_eval_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    main(["train", "--model", "lenet5_modern", "--batch-size", "128", "--lr", "0.01", "--epochs", "1",
          "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert "1298 train / 144 val / 355 test images" in printed
    main(["eval", "--checkpoint", str(out / "best.ckpt.npz"), "--json", "--quiet"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(last)
    assert metrics["split"] == "test" and metrics["images"] == 355 and 0 <= metrics["acc"] <= 1
    assert f"test accuracy {metrics['acc']:.4f}" in printed  # the kept model is the one evaluated
