"""Seeded CPU training is bit-reproducible: the same seed gives the same weights, bit for bit.

What could break it, and why it does not here: the data order (DataLoader(seed=)), the
augmentation draws and dropout masks (tinyvision's generator, reseeded by Trainer(seed=) at the
start of fit), the initial weights (tv.manual_seed before the model is built), and the parallel
kernels (every Numba prange loop writes its own outputs; the only parallel sum, LayerNorm's
weight gradient, adds one partial per thread in a fixed order). The last two depend on the
thread count, not on thread timing: a run with another number of threads can differ in the
last bits, and after many steps by more (docs/training.md, "Reproducible runs").
"""
from __future__ import annotations

import numpy as np

import tinyvision as tv
from tinyvision import optim
from tinyvision.data import DataLoader, Subset, digits, transforms as T
from tinyvision.models import create_model
from tinyvision.train import Classifier, Trainer


def train_once(seed: int) -> dict[str, np.ndarray]:
    tv.manual_seed(seed)
    data = digits(train=True, size=32, transform=T.RandomAffine(10, translate=(0.1, 0.1)))
    loader = DataLoader(Subset(data, range(96)), batch_size=32, shuffle=True, seed=seed)
    model = create_model("lenet5_modern", num_classes=10)
    module = Classifier(model, lambda p: optim.AdamW(p, lr=1e-3))
    Trainer(max_epochs=2, seed=seed, progress=False).fit(module, loader)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_the_same_seed_gives_the_same_weights_bit_for_bit() -> None:
    first, second = train_once(0), train_once(0)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    other = train_once(1)
    assert not all(np.array_equal(first[k], other[k]) for k in first)  # the seed does matter
