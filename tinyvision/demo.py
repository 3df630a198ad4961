"""The main job of `make demo`: train a small MLP on the handwritten digits that ship inside
scikit-learn (1,797 8x8 images), from scratch, and print the test accuracy."""
from __future__ import annotations

import time

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F


def main() -> float:
    from sklearn.datasets import load_digits

    tv.manual_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1437], order[1437:]

    # 64 -> 128 -> 10, He-initialised; plain SGD with momentum on mini-batches of 64
    params = [tv.randn(64, 128) * np.sqrt(2 / 64), tv.zeros(128),
              tv.randn(128, 10) * np.sqrt(2 / 128), tv.zeros(10)]
    params = [p.detach().requires_grad_() for p in params]
    velocity = [np.zeros_like(p.data) for p in params]

    def logits(batch: tv.Tensor) -> tv.Tensor:
        w1, b1, w2, b2 = params
        return F.relu(batch @ w1 + b1) @ w2 + b2

    start = time.perf_counter()
    for epoch in range(20):
        perm = np.random.default_rng(epoch).permutation(train)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(logits(tv.tensor(x[idx])), tv.tensor(y[idx]))
            for p in params:
                p.grad = None
            loss.backward()
            for p, v in zip(params, velocity):
                v *= 0.9
                v += p.grad.data
                p.data -= 0.05 * v
        if epoch % 5 == 4:
            print(f"epoch {epoch + 1:2d}  loss {loss.item():.4f}")
    with tv.no_grad():
        pred = logits(tv.tensor(x[test])).argmax(1).numpy()
    acc = float((pred == y[test]).mean())
    print(f"test accuracy {acc:.3f} on {len(test)} held-out digits "
          f"({time.perf_counter() - start:.1f} s of training)")
    return acc


if __name__ == "__main__":
    main()
