"""The training loop, written out once: epochs, steps, validation, logging, checkpoints.

One epoch::

    for batch in train_loader:
        loss = module.training_step(batch, i)     # forward + loss on logits
        optimizer.zero_grad(); loss.backward()    # gradients of every parameter
        optimizer.step()                          # the update rule
    scheduler.step()                              # once per epoch (or per step: interval="step")
    metrics = mean of module.validation_step over val_loader (under no_grad, in eval mode)

Around it: a progress bar (tqdm), a CSV of per-epoch metrics, a PNG of the curves, atomic
checkpoints (model, optimizer, scheduler, epoch, RNG state) after every epoch, resuming so that
the continued run equals an uninterrupted one, and a clear stop when the loss is NaN/inf.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable

import tinyvision as tv
from tinyvision import random as tv_random
from tinyvision.train.module import TrainModule
from tinyvision.viz.plot import plot_curves


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def _split_optimizers(config: Any) -> tuple[Any, Any, str]:
    """configure_optimizers() result -> (optimizer, scheduler or None, "epoch" or "step")."""
    if isinstance(config, dict):
        optimizer, scheduler = config["optimizer"], config.get("lr_scheduler")
    elif isinstance(config, (tuple, list)):
        optimizer, scheduler = config[0], config[1] if len(config) > 1 else None
    else:
        optimizer, scheduler = config, None
    interval = "epoch"
    if isinstance(scheduler, dict):  # Lightning's {"scheduler": s, "interval": "step"}
        scheduler, interval = scheduler["scheduler"], scheduler.get("interval", "epoch")
        if interval not in ("epoch", "step"):
            raise ValueError(f"lr_scheduler interval must be 'epoch' or 'step', got {interval!r}")
    return optimizer, scheduler, interval


def _number(value: Any) -> float:
    return float(value.item()) if isinstance(value, tv.Tensor) else float(value)


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor ((x, y) tuples, dicts or a tensor)."""
    while isinstance(batch, (tuple, list, dict)):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(batch)


class Trainer:
    """``Trainer(max_epochs=10, out_dir="runs/x").fit(module, train_loader, val_loader)``.

    out_dir: where ``metrics.csv``, ``curves.png`` and ``last.ckpt.npz`` (plus
        ``best.ckpt.npz``, the epoch with the best ``monitor``) go; None writes nothing.
    monitor: the row key (higher is better) that picks the best epoch, e.g. ``"val_acc"`` or
        ``"val_mean_iou"``: always a validation metric, never one of the test split.
    seed: seeds tinyvision's generator at the start of ``fit`` (weights drawn before are the
        caller's business), so that a run is repeatable.
    progress: show tqdm progress bars (falls back to plain lines without tqdm).
    extra_checkpoint: more entries for every checkpoint (e.g. the model's config).
    distributed: data-parallel over the ranks of ``mpiexec -n R`` (docs/distributed.md): the
        model is wrapped in DistributedDataParallel, the loaders are sharded (their batch size
        is the global batch), metrics are all-reduced, each rank seeds ``seed + rank``, and
        only rank 0 prints and writes files.
    sync_batchnorm: with ``distributed``, BatchNorm layers take their statistics over all
        ranks (SyncBatchNorm) instead of each rank's share of the batch (PyTorch's default).
    """

    def __init__(self, max_epochs: int = 1, out_dir: str | Path | None = None, seed: int | None = 0,
                 progress: bool = True, grad_clip_norm: float | None = None,
                 extra_checkpoint: dict[str, Any] | None = None, monitor: str = "val_acc",
                 distributed: bool = False, sync_batchnorm: bool = False) -> None:
        if max_epochs < 1:
            raise ValueError(f"Trainer: max_epochs must be >= 1, got {max_epochs}")
        self.max_epochs = max_epochs
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.seed = seed
        self.progress = progress
        self.grad_clip_norm = grad_clip_norm
        self.extra_checkpoint = dict(extra_checkpoint or {})
        self.monitor = monitor
        self.distributed = distributed
        self.sync_batchnorm = sync_batchnorm
        self._ddp: Any = None  # the DistributedDataParallel wrapper while fitting distributed
        self.rank = 0  # this process's rank once fit() joined the MPI job
        self.best_epoch: int | None = None  # 1-based epoch of the best `monitor` so far
        self._best_state: dict[str, Any] | None = None  # its weights, when nothing is written to disk
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.global_step = 0

    # ----------------------------------------------------------------- the loop
    def fit(self, module: TrainModule, train_loader: Iterable, val_loader: Iterable | None = None,
            resume_from: str | Path | None = None) -> list[dict[str, float]]:
        """Train for ``max_epochs`` (counting epochs done before a resume). Returns the history."""
        if self.distributed:
            train_loader = self._distribute(module, train_loader)
        if self.seed is not None:
            tv.manual_seed(self.seed + self.rank)  # each rank its own dropout masks and augmentations
        optimizer, scheduler, interval = _split_optimizers(module.configure_optimizers())
        if resume_from is not None:
            self._restore(resume_from, module, optimizer, scheduler, train_loader)
        start = time.perf_counter()
        while self.epoch < self.max_epochs:
            module.train()
            lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
            train_metrics = self._run_epoch(module, train_loader, optimizer,
                                            scheduler if interval == "step" else None)
            if scheduler is not None and interval == "epoch":
                scheduler.step()
            row = {"epoch": self.epoch + 1, **{f"train_{k}": v for k, v in train_metrics.items()}, "lr": lr}
            if val_loader is not None:
                row.update({f"val_{k}": v for k, v in self.validate(module, val_loader).items()})
            row["time_s"] = round(time.perf_counter() - start, 3)
            self.history.append(row)
            self.epoch += 1
            self._log(row)
            improved = self._track_best(row)
            if self.out_dir is not None:
                self._save(module, optimizer, scheduler, train_loader, improved)
            elif improved:
                self._best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if self.distributed:  # nobody reads best.ckpt.npz (restore_best) before rank 0 wrote it
            from tinyvision.distributed import barrier

            barrier()
        return self.history

    def _track_best(self, row: dict[str, float]) -> bool:
        """Is this epoch the best so far by ``monitor``? (Ties go to the later epoch.)"""
        value = row.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        best = None if self.best_epoch is None else self.history[self.best_epoch - 1][self.monitor]
        if best is None or value >= best:
            self.best_epoch = row["epoch"]
            return True
        return False

    def restore_best(self, module: TrainModule) -> int | None:
        """Load the weights of the best epoch into ``module`` (from best.ckpt.npz when this
        Trainer writes files, else from memory). Returns that epoch, or None when no epoch
        had a finite ``monitor`` (the module is then left as it is)."""
        if self.best_epoch is None:
            return None
        if self.out_dir is not None and (self.out_dir / "best.ckpt.npz").exists():
            module.load_state_dict(tv.load(self.out_dir / "best.ckpt.npz")["model"])
        elif self._best_state is not None:
            module.load_state_dict(self._best_state)
        elif self.best_epoch != self.epoch:  # resumed without an out_dir: the best weights are gone
            raise RuntimeError(f"restore_best: epoch {self.best_epoch} was best by {self.monitor}, but its "
                               "weights were written nowhere (resume with an out_dir to keep best.ckpt)")
        return self.best_epoch

    def _run_epoch(self, module: TrainModule, loader: Iterable, optimizer: Any,
                   step_scheduler: Any = None) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(self.epoch)  # a DistributedSampler's order for this epoch
        bar = self._bar(loader, f"epoch {self.epoch + 1}/{self.max_epochs}")
        for i, batch in enumerate(bar):
            if self._ddp is not None:
                self._ddp.sync_buffers()  # rank 0's BatchNorm statistics, as DDP's forward does
            out = module.training_step(batch, i)
            loss = out["loss"] if isinstance(out, dict) else out
            value = _number(loss)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss became {value} at epoch {self.epoch + 1}, step {i} (global step "
                    f"{self.global_step}); lower the learning rate or check the inputs")
            optimizer.zero_grad()
            loss.backward()
            if self._ddp is not None:
                self._ddp.synchronize()  # averaged gradients, also where some got none
            if self.grad_clip_norm is not None:
                from tinyvision.nn.utils import clip_grad_norm_

                clip_grad_norm_(module.parameters(), self.grad_clip_norm)
            optimizer.step()
            if step_scheduler is not None:
                step_scheduler.step()
            self.global_step += 1
            n = _batch_size(batch)  # weights for a per-sample mean, as in validate
            for k, v in (out.items() if isinstance(out, dict) else {"loss": loss}.items()):
                sums[k] = sums.get(k, 0.0) + n * _number(v)
            count += n
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({k: f"{v / count:.4f}" for k, v in sums.items()})
        if self.distributed:  # sums and counts over all ranks: the per-sample mean of the epoch
            sums, count = _all_reduce_metrics(sums, count)
        return {k: v / max(count, 1) for k, v in sums.items()}

    def validate(self, module: TrainModule, loader: Iterable) -> dict[str, float]:
        """Per-sample mean of ``validation_step`` metrics over ``loader``, in eval mode, without
        a graph: each batch's mean is weighted by its size, so a short last batch counts for
        what it holds and the accuracy is the share of all samples that are right."""
        was_training = module.training
        module.eval()
        if self.distributed and not _has_whole_set_metrics(module):
            from tinyvision.distributed.sampler import shard_loader

            loader = shard_loader(loader, train=False)  # every rank a share; sums all-reduced below
        sums: dict[str, float] = {}
        count = 0
        with tv.no_grad():
            module.on_validation_epoch_start()
            for i, batch in enumerate(self._bar(loader, "validate", leave=False)):
                n = _batch_size(batch)
                for k, v in module.validation_step(batch, i).items():
                    sums[k] = sums.get(k, 0.0) + n * _number(v)
                count += n
            whole_set = module.on_validation_epoch_end() or {}
        if self.distributed and not _has_whole_set_metrics(module):
            sums, count = _all_reduce_metrics(sums, count)
        module.train(was_training)
        return {**{k: v / max(count, 1) for k, v in sums.items()}, **{k: _number(v) for k, v in whole_set.items()}}

    test = validate

    # ----------------------------------------------------------------- data parallelism
    def _distribute(self, module: TrainModule, train_loader: Iterable) -> Iterable:
        """Join the MPI job, give every rank rank 0's weights, hook the gradient all-reduce,
        and shard the training loader (docs/distributed.md)."""
        import tinyvision.distributed as dist

        self.rank = dist.init()[0]
        if self._ddp is None or self._ddp.module is not module:
            if self.sync_batchnorm:
                dist.SyncBatchNorm.convert_sync_batchnorm(module)  # in place: same parameters and keys
            self._ddp = dist.DistributedDataParallel(module)
        if self.rank != 0:
            self.progress = False  # one progress bar and one log: rank 0's
        return dist.shard_loader(train_loader, seed=self.seed or 0)

    def _gather_rng_states(self) -> dict[str, Any]:
        """{"rng_ranks": {rank: generator state}} so that a resumed run goes on with each rank's
        own random stream; {} when not distributed."""
        if not self.distributed:
            return {}
        from tinyvision.distributed import all_gather_object

        return {"rng_ranks": {str(r): s for r, s in enumerate(all_gather_object(tv_random.get_rng_state()))}}

    def _restore_rng_of_rank(self, ckpt: dict[str, Any]) -> None:
        """This rank's own generator state (a checkpoint of one process, or of fewer ranks,
        has none for it: it then goes on from the saved ``rng`` like rank 0)."""
        state = ckpt.get("rng_ranks", {}).get(str(self.rank))
        if state is not None:
            tv_random.set_rng_state(state)

    # ----------------------------------------------------------------- output
    def _bar(self, loader: Iterable, desc: str, leave: bool = True) -> Iterable:
        if not self.progress:
            return loader
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return loader
        return tqdm(loader, desc=desc, leave=leave, dynamic_ncols=True)

    def _log(self, row: dict[str, float]) -> None:
        if not self.progress:
            return
        # four decimals, except the rate: a warm-up's 3e-06 would print as 0.0000
        print("  ".join(f"{k} {v:.3g}" if k == "lr" else f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()))

    def _save(self, module: TrainModule, optimizer: Any, scheduler: Any, loader: Any, improved: bool) -> None:
        rng_ranks = self._gather_rng_states()  # a collective: every rank takes part
        if self.rank != 0:
            return  # one writer: rank 0 (the weights are the same on every rank)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = {
            "model": module.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "epoch": self.epoch, "global_step": self.global_step,
            "rng": tv_random.get_rng_state(),
            "loader": loader.state_dict() if hasattr(loader, "state_dict") else {},
            "history": json.dumps(self.history),
            **rng_ranks,
            **self.extra_checkpoint,
        }
        tv.save(checkpoint, self.out_dir / "last.ckpt.npz")
        if improved:
            tv.save(checkpoint, self.out_dir / "best.ckpt.npz")
        # the metrics after the checkpoint: a crash in between leaves no rows it does not hold
        write_csv(self.out_dir / "metrics.csv", self.history)
        try:
            plot_curves(self.history, self.out_dir / "curves.png", self.monitor.removeprefix("val_"))
        except ImportError:  # matplotlib is optional (the `viz` extra)
            pass

    def _restore(self, path: str | Path, module: TrainModule, optimizer: Any, scheduler: Any, loader: Any) -> None:
        ckpt = tv.load(path)  # a missing, corrupt or truncated file: an error naming the path
        missing = [k for k in ("model", "optimizer", "epoch", "global_step", "rng", "history") if k not in ckpt]
        if missing:
            raise ValueError(f"resume: {str(path)!r} is not a Trainer checkpoint (no {', '.join(missing)}); "
                             "resume from the last.ckpt.npz or best.ckpt.npz of a run")
        module.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"]:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("loader") and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(ckpt["loader"])
        tv_random.set_rng_state(ckpt["rng"])
        if self.distributed:
            self._restore_rng_of_rank(ckpt)
        self.epoch, self.global_step = int(ckpt["epoch"]), int(ckpt["global_step"])
        self.history = json.loads(str(ckpt["history"]))
        for row in self.history:  # which epoch was best before the interruption
            self._track_best(row)


def _all_reduce_metrics(sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
    from tinyvision.distributed import all_reduce_metrics

    return all_reduce_metrics(sums, count)


def _has_whole_set_metrics(module: TrainModule) -> bool:
    """Metrics over a whole set (mIoU, mAP) cannot be summed over ranks' shards: such a module
    validates on the whole set on every rank instead."""
    return type(module).on_validation_epoch_end is not TrainModule.on_validation_epoch_end


def write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """Write the per-epoch metrics (atomically: a temporary file, then a rename)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
