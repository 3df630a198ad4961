"""Reading back what ``tinyvision train`` wrote: the model and the config it was trained with.

    model, config = tinyvision.load_checkpoint("runs/lenet5/best.ckpt.npz")

A Trainer checkpoint holds the TrainModule's weights (keys ``model.*``), the optimizer,
scheduler and RNG state, the metrics history, and ``config``: the task, the model's name and
constructor keywords, the data and the recipe. That is enough to rebuild the same network
without being told anything else.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tinyvision as tv


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(model in eval mode, config)`` from a checkpoint written by ``tinyvision train``.

    Raises ValueError naming the file when it is not such a checkpoint (FileNotFoundError when
    it does not exist). Checkpoints from before tasks existed are read as ``task="classify"``.
    """
    from tinyvision.train.tasks import build_model

    ckpt = tv.load(path)
    if "config" not in ckpt:
        raise ValueError(f"{str(path)!r} has no 'config' entry: was it written by `tinyvision train`?")
    config = json.loads(str(ckpt["config"]))
    config.setdefault("task", "classify")
    model = build_model(config)
    model.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["model"].items()})
    return model.eval(), config
