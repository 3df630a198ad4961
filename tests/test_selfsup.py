"""The ``mae`` task: a short pre-training through the Trainer lowers the masked loss, the
checkpoint fine-tunes as a ViT with the same features, predict's pictures, bad options."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.data import DataLoader, TensorDataset
from tinyvision.models import create_model
from tinyvision.train import Trainer, get_task
from tinyvision.train.selfsup import MAEModule, mae_pictures, vit_from_mae


def test_mae_pretraining_lowers_the_loss_and_fine_tunes_from_its_checkpoint(tmp_path) -> None:
    from tinyvision.data import shapes

    data = shapes(48, 16, seed=0)
    images = np.stack([data[i][0] for i in range(48)])
    loader = DataLoader(TensorDataset(tv.tensor(images), tv.zeros(48)), batch_size=16, shuffle=True, seed=0)
    val = DataLoader(TensorDataset(tv.tensor(images[:16]), tv.zeros(16)), batch_size=16)
    tv.manual_seed(0)
    kwargs = {"img_size": 16, "mask_ratio": 0.75}
    model = create_model("mae_vit_nano_patch4_32", **kwargs)
    module = MAEModule(model, lambda p: tv.optim.AdamW(p, lr=2e-3))
    config = {"task": "mae", "model": "mae_vit_nano_patch4_32", "kwargs": kwargs, "data": "shapes", "image_size": 16}
    trainer = Trainer(max_epochs=6, out_dir=tmp_path, progress=False, monitor="val_neg_loss",
                      extra_checkpoint={"config": json.dumps(config)})
    history = trainer.fit(module, loader, val)
    assert history[-1]["val_loss"] < 0.9 * history[0]["val_loss"]
    assert model.pos_embed.grad is None  # the sin-cos positions stay fixed

    vit = vit_from_mae(str(tmp_path / "best.ckpt.npz"), num_classes=3)
    trainer.restore_best(module)
    x = tv.tensor(images[:4])
    np.testing.assert_allclose(vit.forward_features(x).detach().numpy(), model.forward_features(x).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    assert vit(x).shape == (4, 3)

    original, masked, recon = mae_pictures(model, images[:3])
    assert masked.shape == recon.shape == original.shape == (3, 3, 16, 16)
    visible = (masked != 0.5).all(axis=1)  # pixels of visible patches are shown as they were
    np.testing.assert_allclose(recon.transpose(0, 2, 3, 1)[visible], original.transpose(0, 2, 3, 1)[visible],
                               rtol=1e-5, atol=1e-6)

    from tinyvision.cli import main

    main(["viz", "mae", "--checkpoint", str(tmp_path / "best.ckpt.npz"), "--out", str(tmp_path / "viz")])
    assert (tmp_path / "viz" / "mae.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="masked autoencoder"):
        main(["viz", "mae", "--model", "resnet18", "--image-size", "32", "--out", str(tmp_path / "viz")])


def test_mae_task_refuses_bad_options() -> None:
    task = get_task("mae")
    config = {**task.defaults, "model": "mae_vit_nano_patch4_32", "data": "shapes", "seed": 0, "mask_ratio": 1.0}
    with pytest.raises(SystemExit, match=r"--mask-ratio must be in \(0, 1\), got 1.0"):
        task.datasets(config)
    with pytest.raises(SystemExit, match="trains a masked autoencoder"):
        task.datasets({**config, "mask_ratio": 0.75, "model": "resnet18"})


def test_dino_is_declared_but_refused_with_one_line() -> None:
    from tinyvision.cli import main

    with pytest.raises(SystemExit, match="'dino' is declared but not built yet"):
        main(["train", "--task", "dino"])
