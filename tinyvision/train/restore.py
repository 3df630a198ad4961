"""Restoration tasks: ``denoise``, ``sr`` (super-resolution), ``deblur`` (and ``colorize``, not
built yet), trained on patches of real photographs and judged by PSNR/SSIM on whole ones.

    tinyvision train --task denoise --out runs/dncnn          # DnCNN, Gaussian noise sigma = 25
    tinyvision train --task sr --out runs/espcn               # ESPCN x2, bicubic-antialiased LR
    tinyvision train --task deblur --out runs/deblur          # U-Net, Gaussian blur 2 in 15x15 + noise 0.01
    tinyvision restore --checkpoint runs/dncnn/best.ckpt.npz NOISY.png OUT.png

The photos are split once and for all (``tinyvision.imaging.photos``): random patches of the ten
training photos, degraded on the fly with fresh noise every epoch; the checkpoint is chosen by
PSNR on the (fixed, seeded) degraded centre of ``moon``; the test figure is ``camera``, degraded
with seed 0, which no run ever trains on or selects with. Images are grey, values in [0, 1];
the outputs are clipped to [0, 1] before PSNR/SSIM, as an 8-bit image would be.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import imaging
from tinyvision.imaging.losses import charbonnier_loss, ssim_loss
from tinyvision.metrics import psnr, ssim
from tinyvision.train.module import TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory

DATASETS = ("photos",)
LOSSES: dict[str, Callable[[tv.Tensor, tv.Tensor], tv.Tensor]] = {
    "l2": F.mse_loss, "l1": F.l1_loss, "charbonnier": charbonnier_loss, "ssim": ssim_loss}


# --------------------------------------------------------------------------- the module
class RestorationModule(TrainModule):
    """``batch = (degraded, clean)``; the loss between ``model(degraded)`` and ``clean``; on
    validation, the mean PSNR and SSIM over the images (network output clipped to [0, 1]) and
    those of ``baseline(degraded)`` (the degraded input itself, or its bicubic upsampling),
    unclipped."""

    def __init__(self, model: tv.nn.Module, optimizer: Callable, scheduler: Callable | None, loss: str = "l2",
                 baseline: Callable[[tv.Tensor], tv.Tensor] = lambda x: x, train_set: Any = None) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
        self.model, self.loss_fn, self.baseline = model, LOSSES[loss], baseline
        self._optimizer, self._scheduler = optimizer, scheduler
        self._train_set, self._epochs_seen = train_set, 0
        self._scores: dict[str, list[float]] = {}

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        degraded, clean = batch
        return {"loss": self.loss_fn(self.model(degraded), clean)}

    def on_validation_epoch_start(self) -> None:
        self._scores = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
        # validation closes a training epoch: the next one draws fresh patches and noise
        if self._train_set is not None and hasattr(self._train_set, "set_epoch"):
            self._epochs_seen += 1
            self._train_set.set_epoch(self._epochs_seen)

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        degraded, clean = batch
        out = self.model(degraded)
        # the network's output is clipped, as an 8-bit image would be; the degraded input is
        # scored as it is (the literature's "noisy: 20.16 dB" is unclipped)
        for name, image in (("", out.clip(0, 1)), ("input_", self.baseline(degraded))):
            self._scores[name + "psnr"] += psnr(image, clean, reduction="none").numpy().tolist()
            self._scores[name + "ssim"] += ssim(image, clean, reduction="none").numpy().tolist()
        return {"loss": F.mse_loss(out, clean)}

    def on_validation_epoch_end(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self._scores.items() if v}

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer(self.model.parameters())
        if self._scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self._scheduler(optimizer)}


# ----------------------------------------------------------------------------- the tasks
def _photo_splits(config: dict[str, Any]) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    if config["data"] not in DATASETS:
        raise SystemExit(f"unknown --data {config['data']!r} for task {config['task']}; choose one of: "
                         f"{', '.join(DATASETS)} (the offline photographs of scikit-image and scikit-learn)")
    crop = config["val_crop"]
    train = imaging.load_photos(imaging.TRAIN_PHOTOS)
    val = [_centre(p, crop) for p in imaging.load_photos(imaging.VAL_PHOTOS)]
    test = imaging.load_photos(imaging.TEST_PHOTOS)
    return train, val, test


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size crop (validation on a crop keeps every epoch's check short)."""
    h, w = image.shape[1:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return np.ascontiguousarray(image[:, top:top + size, left:left + size])


class RestorationTask(Task):
    """What the three tasks share; each subclass says how an image is degraded."""

    default_data = "photos"
    monitor = "psnr"
    common = {"optimizer": "adam", "weight_decay": 0.0, "schedule": "cosine", "loss": "l2", "val_crop": 256}

    def degrade(self, config: dict[str, Any]) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
        raise NotImplementedError

    def margin(self, config: dict[str, Any]) -> int:
        """Extra pixels around each training patch that the degradation may read."""
        return 0

    def baseline(self, config: dict[str, Any]) -> Callable[[tv.Tensor], tv.Tensor]:
        return lambda x: x

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--loss", choices=tuple(LOSSES), default=None, help="training loss (default: the recipe's)")
        parser.add_argument("--patches", type=int, default=None, help="training patches per epoch (default: the recipe's)")

    def check(self, config: dict[str, Any]) -> None:
        """Reject bad task options with one line (before any data is read)."""
        if config["patches"] < 1:
            raise SystemExit(f"--patches must be >= 1, got {config['patches']}")

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        self.check(config)
        train, val, test = _photo_splits(config)
        patch = config["image_size"]
        self.train_set = imaging.PatchDataset(train, patch, self.degrade(config), length=config["patches"],
                                              seed=config["seed"], margin=self.margin(config))
        config["channels"] = 1
        return (self.train_set, imaging.DegradedImages(val, self.degrade(config), seed=1),
                imaging.DegradedImages(test, self.degrade(config), seed=0))

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return RestorationModule(model, optimizer_factory(config), scheduler_factory(config), loss=config["loss"],
                                 baseline=self.baseline(config), train_set=getattr(self, "train_set", None))

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        from pathlib import Path

        out = str(Path(args.image).with_suffix("")) + "_restored.png"
        restore_file(model, config, args.image, out)
        print(f"wrote {out}")


class DenoiseTask(RestorationTask):
    """Additive white Gaussian noise of ``sigma`` (0-255 scale), DnCNN by default."""

    default_model = "dncnn"
    defaults = {**RestorationTask.common, "epochs": 6, "batch_size": 16, "lr": 2e-3, "image_size": 40,
                "patches": 800, "sigma": 25.0, "features": 32, "val_crop": 128}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--sigma", type=float, default=None, help="noise level on the 0-255 scale (default 25)")
        parser.add_argument("--features", type=int, default=None, help="DnCNN's width (default: the recipe's)")

    def check(self, config: dict[str, Any]) -> None:
        super().check(config)
        if not config["sigma"] >= 0:
            raise SystemExit(f"--sigma must be >= 0 (the noise level on the 0-255 scale), got {config['sigma']}")

    def degrade(self, config):
        sigma = config["sigma"]
        return lambda clean, rng: imaging.gaussian_noise(clean, sigma, rng)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"in_channels": 1}
        if config["model"] == "dncnn":
            kwargs["features"] = config["features"]
        return kwargs


class SuperResolutionTask(RestorationTask):
    """x ``scale`` super-resolution of bicubic-antialiased downsampled images, ESPCN by default.
    The input is the small image; the baseline is its bicubic upsampling."""

    default_model = "espcn"
    defaults = {"epochs": 20, "batch_size": 16, "lr": 1e-3, "image_size": 48, "patches": 1600, "scale": 2,
                "residual": True, **RestorationTask.common}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=None, help="upscaling factor (default 2)")
        parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                            help="espcn: add the bicubic upsampling to the output (default: on; "
                                 "--no-residual is the paper's network)")

    def check(self, config: dict[str, Any]) -> None:
        super().check(config)
        if config["image_size"] % config["scale"]:
            raise SystemExit(f"--image-size {config['image_size']} must be a multiple of --scale {config['scale']}")

    def degrade(self, config):
        scale = config["scale"]
        return lambda clean, rng: imaging.downsample(clean, scale)

    def baseline(self, config):
        scale = config["scale"]
        return lambda x: imaging.upsample(x, scale)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"in_channels": 1, "scale": config["scale"]}
        if config["model"] == "espcn":
            kwargs["residual"] = config["residual"]
        return kwargs


class DeblurTask(RestorationTask):
    """Gaussian blur (sigma ``blur_sigma`` in a ``kernel_size`` square kernel) plus Gaussian
    noise of standard deviation ``noise`` on [0, 1]; the deblurring U-Net by default.

    Training patches are blurred with the border they would have inside the photo (a larger
    crop is blurred, then its centre kept), so that the network never learns reflected edges."""

    default_model = "deblur_unet"
    defaults = {"epochs": 12, "batch_size": 8, "lr": 1e-3, "image_size": 64, "patches": 800, "blur_sigma": 2.0,
                "kernel_size": 15, "noise": 0.01, **RestorationTask.common}

    def degrade(self, config):
        kernel = imaging.gaussian_kernel(config["kernel_size"], config["blur_sigma"])
        noise = config["noise"] * 255
        return lambda clean, rng: imaging.gaussian_noise(imaging.blur(clean, kernel), noise, rng)

    def margin(self, config: dict[str, Any]) -> int:
        return config["kernel_size"] // 2

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        return {"in_channels": 1}


class ColorizeTask(Task):
    """Declared by the task registry; not built yet."""

    def __init__(self) -> None:
        raise ValueError("task 'colorize' is declared but not built yet (see docs/restoration.md)")


TASKS = {"denoise": DenoiseTask, "sr": SuperResolutionTask, "deblur": DeblurTask}


# ------------------------------------------------------------------------- restoring files
def _apply(model: Any, image: np.ndarray, scale: int) -> np.ndarray:
    """model on one (1, H, W) float32 image, no graph."""
    with tv.no_grad():
        return model(tv.tensor(image[None])).numpy()[0]


def restore(model: Any, image: np.ndarray, scale: int = 1, tile: int = 256, margin: int | None = None) -> np.ndarray:
    """Run a grey restoration ``model`` on a (C, H, W) image in [0, 1], channel by channel,
    returning (C, H scale, W scale) clipped to [0, 1].

    Images larger than ``tile`` x ``tile`` go through in overlapping tiles: each tile is cut
    with ``margin`` extra pixels on every side (default: half the model's receptive field, so
    that every kept output pixel sees exactly the input it would see in one pass) and only its
    centre is kept. Memory stays bounded whatever the image size."""
    receptive = getattr(model, "receptive_field", 33)
    margin = (receptive // 2 + 1) if margin is None else margin
    c, h, w = image.shape
    out = np.zeros((c, h * scale, w * scale), dtype=np.float32)
    for ch in range(c):
        plane = image[ch:ch + 1]
        if h <= tile and w <= tile:
            out[ch] = _apply(model, plane, scale)[0]
            continue
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                t0, l0 = max(top - margin, 0), max(left - margin, 0)
                t1, l1 = min(top + tile + margin, h), min(left + tile + margin, w)
                piece = _apply(model, np.ascontiguousarray(plane[:, t0:t1, l0:l1]), scale)[0]
                bottom, right = min(top + tile, h), min(left + tile, w)
                out[ch, top * scale:bottom * scale, left * scale:right * scale] = piece[
                    (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    return np.clip(out, 0, 1)


def restore_file(model: Any, config: dict[str, Any], source: str, target: str, scale: int | None = None,
                 tile: int = 256) -> np.ndarray:
    """Read ``source`` (grey or RGB), restore it with the checkpoint's model, write ``target``
    (same channels; same size, or ``scale`` times larger for super-resolution)."""
    trained_scale = int(config.get("scale", 1)) if config["task"] == "sr" else 1
    if scale is not None and scale != trained_scale:
        raise ValueError(f"--scale {scale}: this checkpoint was trained for x{trained_scale} "
                         f"({config['model']}, task {config['task']})")
    image = imaging.read_image(source)
    receptive = getattr(model, "receptive_field", 1)
    if min(image.shape[1:]) < receptive:
        raise ValueError(f"{source}: the image is {image.shape[1]} x {image.shape[2]}, smaller than the "
                         f"model's receptive field ({receptive} px); give an image at least {receptive} x {receptive}")
    restored = restore(model, image, trained_scale, tile=tile)
    imaging.write_image(target, restored)
    return restored


# ---------------------------------------------------------------------- classical baselines
def _classical(task: str, config: dict[str, Any]) -> dict[str, tuple[Callable, list]]:
    """name -> (method(degraded (H, W) float64, parameter) -> (H, W), the parameters to try).

    Each method's free parameter is chosen on the validation photo (moon), never on the test
    photo; a method whose package is missing is left out (bm3d is optional)."""
    from skimage import restoration

    methods: dict[str, tuple[Callable, list]] = {}
    if task == "denoise":
        s = config["sigma"] / 255
        methods["wavelet"] = (lambda y, p: restoration.denoise_wavelet(y, sigma=s, rescale_sigma=True), [None])
        methods["nl_means"] = (lambda y, h: restoration.denoise_nl_means(y, h=h * s, sigma=s, patch_size=5,
                                                                         patch_distance=6, fast_mode=True),
                               [0.6, 0.8, 1.0])
        methods["tv"] = (lambda y, w: restoration.denoise_tv_chambolle(y, weight=w), [0.05, 0.08, 0.11, 0.15])
        try:
            import bm3d

            methods["bm3d"] = (lambda y, p: bm3d.bm3d(y, sigma_psd=s), [None])
        except ImportError:
            pass
    elif task == "deblur":
        kernel = imaging.gaussian_kernel(config["kernel_size"], config["blur_sigma"])
        methods["wiener"] = (lambda y, b: restoration.wiener(y, kernel, balance=b), [0.01, 0.03, 0.1, 0.3, 1.0])
        methods["richardson_lucy"] = (lambda y, n: restoration.richardson_lucy(y, kernel, num_iter=n), [10, 30])
    elif task == "sr":
        scale = config["scale"]

        def bilinear(y, p):
            return F.interpolate(tv.tensor(y[None, None]), scale_factor=scale, mode="bilinear").numpy()[0, 0]

        methods["bicubic"] = (lambda y, p: imaging.upsample(y[None], scale)[0], [None])
        methods["bilinear"] = (bilinear, [None])
    return methods


def _score(image: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    a, b = tv.tensor(image[None, None].astype(np.float64)), tv.tensor(clean[None, None].astype(np.float64))
    return {"psnr": float(psnr(a, b).numpy()), "ssim": float(ssim(a, b).numpy())}


def classical_baselines(task: RestorationTask, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The classical methods on the same degraded test photo the network is scored on:
    ``{"input": {psnr, ssim}, "<method>": {psnr, ssim, "param", "seconds"}}``; outputs clipped
    to [0, 1], the input (or its bicubic upsampling for sr) scored as it is."""
    import time

    _, val, test = task.datasets(config)
    (val_in, val_clean), (test_in, test_clean) = val[0], test[0]
    as_input = np.asarray(task.baseline(config)(test_in[None]))[0, 0]
    report: dict[str, dict[str, Any]] = {"input": _score(as_input, test_clean[0])}
    for name, (method, grid) in _classical(config["task"], config).items():
        def val_psnr(p):
            return _score(np.clip(method(val_in[0].astype(np.float64), p), 0, 1), val_clean[0])["psnr"]

        best = max(grid, key=val_psnr) if len(grid) > 1 else grid[0]
        start = time.perf_counter()
        out = np.clip(method(test_in[0].astype(np.float64), best), 0, 1)
        report[name] = {**_score(out, test_clean[0]), "param": best, "seconds": round(time.perf_counter() - start, 2)}
    return report
