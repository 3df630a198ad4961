"""Reading back what ``tinyvision train`` wrote: the model and the config it was trained with.

    model, config = tinyvision.load_checkpoint("runs/lenet5/best.ckpt.npz")

A Trainer checkpoint holds the TrainModule's weights (keys ``model.*``), the optimizer,
scheduler and RNG state, the metrics history, and ``config``: the task, the model's name and
constructor keywords, the data and the recipe. That is enough to rebuild the same network
without being told anything else.

A checkpoint is data from outside, so every part is checked before it is trusted: the config
must be JSON naming a known model; the model its keywords describe must not need more memory
than the weights stored beside it (a tampered ``num_classes=10**11`` is refused before anything
is allocated, not after the machine runs out of memory); the stored weights must fit that model
exactly and be finite. Each failure is a ValueError that names the file and what to do.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import tinyvision as tv

# room for the model's own arrays (up to 4x the stored bytes: a float16 file read into float64)
# and for the Python objects around them
_BUILD_MARGIN_BYTES = 1 << 30


def read_config(ckpt: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``config`` as a dict with a known model name and keyword dict."""
    from tinyvision.models import list_models

    if "config" not in ckpt:
        raise ValueError(f"{str(path)!r} has no 'config' entry: was it written by `tinyvision train`?")
    try:
        config = json.loads(str(ckpt["config"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r}: its config is not valid JSON ({exc}); the file was altered") from None
    if not isinstance(config, dict) or not isinstance(config.get("kwargs", {}), dict):
        raise ValueError(f"{str(path)!r}: its config must be a JSON object with a 'kwargs' object, "
                         f"got {str(ckpt['config'])[:80]!r}")
    config.setdefault("task", "classify")
    if config.get("model") not in list_models():
        raise ValueError(f"{str(path)!r} names unknown model {config.get('model')!r}; "
                         "`tinyvision models` lists them")
    return config


@contextlib.contextmanager
def memory_limit(extra_bytes: int) -> Iterator[None]:
    """Cap this process's address space at its current size + ``extra_bytes`` for the block, so
    that an absurd allocation fails at once with MemoryError (Linux; elsewhere no cap)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        yield
        return
    cap = current + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def build_checked(config: dict[str, Any], stored_bytes: int, path: str | Path) -> Any:
    """``build_model(config)`` with its keywords and its size checked against the file."""
    from tinyvision.train.tasks import build_model

    try:
        with memory_limit(4 * stored_bytes + _BUILD_MARGIN_BYTES):
            return build_model(config)
    except MemoryError:
        raise ValueError(f"{str(path)!r}: its config ({config['model']} with {config.get('kwargs')}) describes "
                         f"a model far larger than the {stored_bytes:,} bytes of weights stored with it; "
                         "refusing to build it (the file was altered)") from None
    except TypeError as exc:  # an unknown or ill-typed constructor keyword
        raise ValueError(f"{str(path)!r}: its config's kwargs {config.get('kwargs')} do not fit model "
                         f"{config['model']}: {exc}") from None


def check_finite(weights: dict[str, np.ndarray], path: str | Path) -> None:
    """Refuse NaN or infinite weights: a diverged run would predict garbage without a word."""
    for name, value in weights.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise ValueError(f"{str(path)!r}: weight {name!r} holds {bad} NaN/inf value(s) of {value.size}; "
                             "the run diverged: use an earlier checkpoint or retrain with a lower --lr")


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(model in eval mode, config)`` from a checkpoint written by ``tinyvision train``.

    Raises ValueError naming the file when it is not such a checkpoint, when it was altered
    (see the module docstring), or when its weights are not finite (FileNotFoundError when it
    does not exist). Checkpoints from before tasks existed are read as ``task="classify"``.
    """
    ckpt = tv.load(path)
    config = read_config(ckpt, path)
    if not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"{str(path)!r} holds no 'model' weights: was it written by `tinyvision train`?")
    weights = {k.removeprefix("model."): np.asarray(v) for k, v in ckpt["model"].items()}
    model = build_checked(config, sum(v.nbytes for v in weights.values()), path)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        more = f" (+{len(lines) - 2} more lines)" if len(lines) > 2 else ""
        raise ValueError(f"{str(path)!r}: its weights do not fit {config['model']} with {config.get('kwargs')}: "
                         + " ".join(lines[:2])[:400] + more) from None
    check_finite(weights, path)
    return model.eval(), config


def prepare_image(path: str | Path, channels: int, size: int) -> tuple[np.ndarray, list[str]]:
    """An image file as a checkpoint's model takes it: ``((channels, size, size) float32 in
    [0, 1], the steps applied, in words)``. A colour image for a grey model becomes the mean of
    R, G and B; the size is reached by bilinear resizing (no crop). ``predict`` prints the steps."""
    from tinyvision.data.folder import load_image
    from tinyvision.data.functional import resize

    image = load_image(path)  # (C, H, W) float32 in [0, 1]; a clear error for a non-image
    steps = [f"{path}: {image.shape[0]} channel(s) {image.shape[1]}x{image.shape[2]}, values scaled to [0, 1]"]
    if channels == 1 and image.shape[0] == 3:
        image = image.mean(0, keepdims=True)
        steps.append("grey (mean of R, G, B)")
    image = resize(image, (size, size))
    steps.append(f"resized to {size}x{size} (bilinear)")
    return image, steps
