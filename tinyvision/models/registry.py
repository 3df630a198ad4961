"""A registry of model builders, as in timm: ``create_model("resnet18", num_classes=10)``."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """Make a builder creatable by name: use as a decorator (the function's name), or as
    ``vgg11 = register_model(partial(VGG, "A"), "vgg11")``."""
    _BUILDERS[name or fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` ('resnet*'), sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int | None = None, **kwargs: Any):
    """Build the model registered as ``name``; keyword arguments go to its constructor.
    ``num_classes`` defaults to the model's own default (1000 for ImageNet models, 10 for
    LeNet-5)."""
    if name not in _BUILDERS:
        close = [n for n in _BUILDERS if name.split("_")[0] in n][:8]
        raise ValueError(f"create_model: unknown model {name!r}; "
                         f"{'similar: ' + ', '.join(close) if close else 'see list_models()'}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _BUILDERS[name](**kwargs)
