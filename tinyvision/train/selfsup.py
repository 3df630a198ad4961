"""Self-supervised tasks: learning from images without their labels.

``mae`` (He et al. 2021, ``tinyvision.models.mae``): hide 75 % of the patches, reconstruct their
normalised pixels; the encoder then fine-tunes as a classifier
(``tinyvision train --model vit_tiny_patch16_224 --pretrained runs/mae/best.ckpt.npz ...``,
or ``vit_from_mae`` in code).

    tinyvision train --task mae --out runs/mae                  # mae_vit_nano_patch4_32 on shapes
    tinyvision predict --task mae IMAGE.png --checkpoint runs/mae/best.ckpt.npz   # IMAGE_mae.png

The validation split (a seeded tenth of the training images, as for ``classify``) picks the
checkpoint by ``neg_loss`` = minus the masked reconstruction loss (the Trainer keeps the highest);
its masks are drawn from a generator seeded per epoch, so every epoch is scored on the same masks.
``DINOTask`` is declared in tasks.py and not built yet: ``--task dino`` says so in one line.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

import tinyvision as tv
from tinyvision.train.module import TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory


class MAEModule(TrainModule):
    """Masked-autoencoder pre-training: the loss is the model's own (masked, normalised-pixel MSE)."""

    def __init__(self, model: Any, optimizer: Callable[[Any], Any], scheduler: Callable[[Any], Any] | None = None,
                 val_seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self._optimizer, self._scheduler = optimizer, scheduler
        self.val_seed = val_seed
        self._val_rng: np.random.Generator | None = None

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, _ = batch  # labels unused
        loss, _, _ = self.model(images)
        return {"loss": loss}

    def on_validation_epoch_start(self) -> None:
        self._val_rng = np.random.default_rng(self.val_seed)  # the same masks every epoch

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, _ = batch
        rng = self._val_rng or np.random.default_rng(self.val_seed)
        noise = tv.tensor(rng.random((images.shape[0], self.model.patch_embed.num_patches)).astype(images.dtype))
        loss, _, _ = self.model(images, noise=noise)
        return {"loss": loss, "neg_loss": -loss.item()}

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]  # the sin-cos positions are fixed
        optimizer = self._optimizer(params)
        if self._scheduler is None:
            return optimizer
        return optimizer, self._scheduler(optimizer)


def mae_pictures(model: Any, images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original, masked, reconstruction), each (N, C, H, W), for ``images`` (N, C, H, W).

    The reconstruction shows the visible patches as they were and the hidden ones as predicted;
    with ``norm_pix_loss`` the prediction is in per-patch normalised units, so it is mapped back
    with the true patch's mean and standard deviation (as in the paper's figures).
    """
    from tinyvision.models.mae import patchify, unpatchify

    x = tv.tensor(images.astype(np.float32))
    noise = tv.tensor(np.random.default_rng(seed).random((len(images), model.patch_embed.num_patches), dtype=np.float32))
    with tv.no_grad():
        _, pred, mask = model.eval()(x, noise=noise)
    patches = patchify(x, model.patch_size).numpy()
    pred = pred.numpy()
    if model.norm_pix_loss:
        mean, std = patches.mean(-1, keepdims=True), np.sqrt(patches.var(-1, ddof=1, keepdims=True) + 1e-6)
        pred = pred * std + mean
    hidden = mask.numpy()[..., None].astype(bool)
    channels, p = images.shape[1], model.patch_size
    masked = unpatchify(tv.tensor(np.where(hidden, 0.5, patches)), p, channels).numpy()
    recon = unpatchify(tv.tensor(np.where(hidden, pred, patches)), p, channels).numpy()
    return images, masked, recon


class MAETask(Task):
    """Masked-autoencoder pre-training (mae_vit_nano_patch4_32 on shapes by default)."""

    default_model = "mae_vit_nano_patch4_32"
    default_data = "shapes"
    defaults = {"epochs": 10, "batch_size": 64, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                "schedule": "cosine", "image_size": None, "mask_ratio": 0.75, "augment": True}
    monitor = "neg_loss"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--mask-ratio", dest="mask_ratio", type=float, default=None,
                            help="share of patches hidden from the encoder, in (0, 1) (default 0.75)")

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        from tinyvision.train.classify import load_data

        if not 0.0 < config["mask_ratio"] < 1.0:
            raise SystemExit(f"--mask-ratio must be in (0, 1), got {config['mask_ratio']}")
        if not config["model"].startswith("mae_"):
            raise SystemExit(f"--task mae trains a masked autoencoder (mae_vit_nano_patch4_32, mae_vit_base_patch16), "
                             f"got --model {config['model']}")
        image_size = config["image_size"] or (32 if config["data"] in ("digits", "shapes") else None)
        train, val, test, channels, _ = load_data(config["data"], image_size, config["augment"], config["seed"])
        config["image_size"] = image_size or train[0][0].shape[-1]
        config["channels"] = channels
        return train, val, test

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        return {"img_size": config["image_size"], "in_chans": config["channels"], "mask_ratio": config["mask_ratio"]}

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return MAEModule(model, optimizer_factory(config), scheduler_factory(config), val_seed=config["seed"])

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        """Write IMAGE_mae.png: the image, its masked version and the reconstruction."""
        from pathlib import Path

        from tinyvision.data.folder import load_image
        from tinyvision.data.functional import resize
        from tinyvision.viz.plot import plot_image_rows

        image = load_image(args.image)
        if config["channels"] == 1 and image.shape[0] == 3:
            image = image.mean(0, keepdims=True)
        image = resize(image, (config["image_size"], config["image_size"]))
        original, masked, recon = mae_pictures(model, image[None])
        out = Path(getattr(args, "out", None) or Path(args.image).with_name(Path(args.image).stem + "_mae.png"))
        plot_image_rows([original, masked, recon], ["original", "masked", "reconstruction"], out)
        print(f"wrote {out}")


def vit_from_mae(checkpoint: str, num_classes: int) -> Any:
    """A VisionTransformer of the MAE encoder's shape, its weights from an MAE checkpoint (the head new)."""
    from tinyvision.models import create_model
    from tinyvision.train.checkpoint import load_checkpoint

    mae, config = load_checkpoint(checkpoint)
    if not config["model"].startswith("mae_"):
        raise ValueError(f"vit_from_mae: {checkpoint!r} holds {config['model']}, not a masked autoencoder")
    vit = create_model("vit_tiny_patch16_224", num_classes=num_classes, img_size=config["image_size"],
                       patch_size=mae.patch_size, in_chans=mae.in_chans, embed_dim=mae.embed_dim,
                       depth=len(mae.blocks), num_heads=mae.blocks[0].attn.num_heads)
    missing, unexpected = vit.load_state_dict(mae.encoder_state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["head.bias", "head.weight"], (missing, unexpected)
    return vit


class DINOTask(Task):
    """DINO (Caron et al. 2021) is declared in tasks.py and not built yet: asking for it is a clear error."""

    def __init__(self) -> None:
        raise ValueError("task 'dino' is declared but not built yet (self-distillation: see docs/transformers.md)")
